package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"imgate/client"
)

// device is a Client under test with what its handlers received.
type device struct {
	*client.Client
	t    testing.TB
	errc chan error // Run's result

	closeOnce sync.Once

	mu       sync.Mutex
	msgs     []client.Message
	receipts []client.Receipt
}

// startDevice builds a Client for cfg (OnMessage, after cfg's own, and OnReceipt record), runs it, and
// closes it when the test ends.
func startDevice(t testing.TB, cfg client.Config) *device {
	t.Helper()
	d := &device{t: t, errc: make(chan error, 1)}
	hook := cfg.OnMessage
	cfg.OnMessage = func(m client.Message) {
		if hook != nil {
			hook(m)
		}
		d.mu.Lock()
		d.msgs = append(d.msgs, m)
		d.mu.Unlock()
	}
	cfg.OnReceipt = func(r client.Receipt) {
		d.mu.Lock()
		d.receipts = append(d.receipts, r)
		d.mu.Unlock()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
	go func() { d.errc <- c.Run(context.Background()) }()
	t.Cleanup(func() { d.close() })
	return d
}

// close closes the Client and checks that Run returned nil.
func (d *device) close() {
	d.t.Helper()
	d.closeOnce.Do(func() {
		_ = d.Close()
		if err := <-d.errc; err != nil {
			d.t.Errorf("Run: %v", err)
		}
	})
}

// waitConnected waits until the Client is bound.
func (d *device) waitConnected() {
	d.t.Helper()
	waitFor(d.t, 10*time.Second, "connected", func() bool {
		s, _ := d.State()
		return s == client.StateConnected
	})
}

// messages returns a copy of what OnMessage received.
func (d *device) messages() []client.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]client.Message(nil), d.msgs...)
}

// waitMessages waits until OnMessage received at least n messages and returns them.
func (d *device) waitMessages(n int) []client.Message {
	d.t.Helper()
	waitFor(d.t, 15*time.Second, "messages", func() bool { return len(d.messages()) >= n })
	return d.messages()
}

// send sends text to a peer and fails the test on an error.
func (d *device) send(to, text string) client.Ack {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ack, err := d.Send(ctx, client.Message{ReceiverID: to, Msg: text})
	if err != nil {
		d.t.Fatalf("send %q: %v", text, err)
	}
	return ack
}

// byMsgID counts the messages per msgId.
func byMsgID(msgs []client.Message) map[int64]int {
	n := map[int64]int{}
	for _, m := range msgs {
		n[m.MsgID]++
	}
	return n
}
