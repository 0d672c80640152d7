package client_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgate/client"
	"imgate/cluster/clustertest"
	"imgate/message"
	"imgate/saver"
	"imgate/server"
)

// TestRestartLosesNothingDeliversOnce: alice sends while the node is stopped (every client
// gets 1001) and started again on the same store; both devices find it again through the
// dispatcher (503 while it is down). Every Send is acknowledged, bob's app gets every
// message exactly once, and alice's app gets none of her own (acknowledged, or ACKed by
// the replay of her own inbox).
func TestRestartLosesNothingDeliversOnce(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	alice := startDevice(t, client.Config{UserID: "alice", Dispatcher: n.dispatcher()})
	bob := startDevice(t, client.Config{UserID: "bob", Dispatcher: n.dispatcher()})
	bob.waitConnected()
	alice.waitConnected()

	const total = 60
	acks := make(chan client.Ack, total)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ack, err := alice.Send(ctx, client.Message{ReceiverID: "bob", Msg: fmt.Sprintf("m%d", i)})
			cancel()
			if err != nil {
				t.Errorf("send m%d: %v", i, err)
				return
			}
			acks <- ack
		}
	}()
	waitFor(t, 15*time.Second, "20 acks", func() bool { return len(acks) >= 20 })
	n.stop()
	waitFor(t, 10*time.Second, "both devices disconnected", func() bool {
		a, _ := alice.State()
		b, _ := bob.State()
		return a != client.StateConnected && b != client.StateConnected
	})
	n.start()
	wg.Wait()
	close(acks)
	want := map[int64]bool{}
	for a := range acks {
		want[a.MsgID] = true
	}
	if len(want) != total {
		t.Fatalf("%d distinct msgIds acknowledged, want %d", len(want), total)
	}
	got := bob.waitMessages(total)
	for id, k := range byMsgID(got) {
		if k != 1 || !want[id] {
			t.Errorf("bob got msgId %d %d times (acknowledged: %v)", id, k, want[id])
		}
	}
	for i, m := range got {
		if m.Seq != int64(i+1) {
			t.Fatalf("bob's message %d has seq %d: order or gap", i, m.Seq)
		}
	}
	if own := alice.messages(); len(own) != 0 {
		t.Errorf("alice's app got %d of her own messages, want 0", len(own))
	}
	if s := bob.Stats(); s.Binds < 2 {
		t.Errorf("bob bound %d times, want a reconnect", s.Binds)
	}
	t.Logf("alice %+v, bob %+v", alice.Stats(), bob.Stats())
}

// gatedStore holds every Save while the gate is closed, so a test can lose an ACK.
type gatedStore struct {
	saver.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	waiting int
}

func (g *gatedStore) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) blocked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *gatedStore) Save(ctx context.Context, recs []message.Record) ([]message.Saved, error) {
	g.mu.Lock()
	gate := g.gate
	if gate != nil {
		g.waiting++
	}
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.Store.Save(ctx, recs)
}

// TestResendIsAcknowledgedOnce: alice's message is written, then her connection is cut
// before the node has stored it (no ACK). After the reconnect the Client writes it again
// with the same clientMsgId; the node stores the first copy and acknowledges the second
// with the same msgId, which completes Send once; bob gets it once.
func TestResendIsAcknowledgedOnce(t *testing.T) {
	store := &gatedStore{Store: saver.NewMemory()}
	n := startNode(t, server.Config{}, store)
	t.Cleanup(store.open) // before the node's cleanup, which waits for the store
	proxy := clustertest.NewProxy(t, n.cfg.Addr)
	alice := startDevice(t, client.Config{UserID: "alice", URL: "ws://" + proxy.Addr() + "/ws"})
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL()})
	alice.waitConnected()
	bob.waitConnected()

	store.close()
	type sent struct {
		ack client.Ack
		err error
	}
	done := make(chan sent, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ack, err := alice.Send(ctx, client.Message{ReceiverID: "bob", Msg: "once", ClientMsgID: "k-1"})
		done <- sent{ack, err}
	}()
	waitFor(t, 10*time.Second, "the first copy held by the store", func() bool { return store.blocked() == 1 })
	proxy.Cut()
	waitFor(t, 10*time.Second, "alice disconnected", func() bool { s, _ := alice.State(); return s != client.StateConnected })
	proxy.Heal()
	waitFor(t, 10*time.Second, "the resend accepted by the node", func() bool {
		return alice.Stats().Resent == 1 && n.server().Stats().Accepted == 2
	})
	store.open()
	r := <-done
	if r.err != nil || r.ack.ClientMsgID != "k-1" || r.ack.MsgID == 0 {
		t.Fatalf("send: %+v", r)
	}
	got := bob.waitMessages(1)
	if len(got) != 1 || got[0].MsgID != r.ack.MsgID {
		t.Fatalf("bob got %+v, ack %+v", got, r.ack)
	}
	// A later message proves nothing else was on its way to bob.
	last := alice.send("bob", "after")
	got = bob.waitMessages(2)
	if len(got) != 2 || got[1].MsgID != last.MsgID {
		t.Fatalf("bob got %d messages: %+v", len(got), got)
	}
	if seq, err := store.LastSeq(context.Background(), "bob"); err != nil || seq != 2 {
		t.Fatalf("bob's inbox holds %d messages (%v), want 2: the resend was stored twice", seq, err)
	}
}

// TestSlowHandlerOverflowLosesNothing: bob's handler blocks while alice sends more than
// his queue holds. The Client leaves the rest out instead of growing, and once the handler
// has caught up reconnects and gets it from the replay: every message once, in seq order.
func TestSlowHandlerOverflowLosesNothing(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	release := make(chan struct{})
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL(), QueueLen: 4, OnMessage: func(client.Message) { <-release }})
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	bob.waitConnected()
	const total = 30
	for i := range total {
		alice.send("bob", fmt.Sprintf("m%d", i))
	}
	waitFor(t, 10*time.Second, "an overflow", func() bool { return bob.Stats().Overflows >= 1 })
	close(release)
	got := bob.waitMessages(total)
	if len(got) != total {
		t.Fatalf("bob got %d messages, want %d", len(got), total)
	}
	for i, m := range got {
		if m.Seq != int64(i+1) || m.Msg != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

// TestHandlerSendsWhileOverflowed: bob's handler answers every message with a Send, which
// waits for its ACK while alice floods his small queue. The overflowed connection still
// reads ACKs, so the handler is answered, catches up, and every message and every answer
// goes through once (a Client that closed the connection on overflow and waited for the
// handler would wait for an ACK that no connection can bring).
func TestHandlerSendsWhileOverflowed(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	var bobClient *client.Client
	var replied, failed atomic.Int64
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL(), QueueLen: 2, OnMessage: func(m client.Message) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := bobClient.Send(ctx, client.Message{ReceiverID: m.SenderID, Msg: "re " + m.Msg}); err != nil {
			failed.Add(1)
			return
		}
		replied.Add(1)
	}})
	bobClient = bob.Client
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	bob.waitConnected()
	const total = 40
	for i := range total {
		alice.send("bob", fmt.Sprintf("m%d", i))
	}
	got := bob.waitMessages(total)
	waitFor(t, 20*time.Second, "every answer acknowledged", func() bool { return replied.Load()+failed.Load() >= total })
	if failed.Load() != 0 || len(got) != total {
		t.Fatalf("%d answers failed, bob got %d messages", failed.Load(), len(got))
	}
	answers := alice.waitMessages(total)
	if len(answers) != total || len(byMsgID(got)) != total {
		t.Fatalf("alice got %d answers; bob %d distinct messages", len(answers), len(byMsgID(got)))
	}
	t.Logf("bob %+v", bob.Stats())
}
