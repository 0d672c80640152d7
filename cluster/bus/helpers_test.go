package bus

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/cluster/clustertest"
	"imgate/cluster/rabbit"
	"imgate/codec"
	"imgate/message"
)

func busTestURL() string { return clustertest.AMQPURL() }

// busAdmin opens a direct connection for test setup and cleanup, failing the test
// with instructions when RabbitMQ does not answer.
func busAdmin(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(busTestURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		t.Fatalf("RabbitMQ at %s does not answer (%v): run scripts/services.sh up", busTestURL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// busTestConfig returns a config with a unique name prefix whose exchanges and
// queues (and the node queues listed in *nodeQueues at cleanup) are deleted at the end.
func busTestConfig(t *testing.T, nodeQueues ...string) (Config, *[]string) {
	t.Helper()
	admin := busAdmin(t)
	cfg := Config{
		Config: rabbit.Config{
			URL:          busTestURL(),
			ReconnectMin: 20 * time.Millisecond,
			ReconnectMax: 200 * time.Millisecond,
			CloseTimeout: 2 * time.Second,
			Heartbeat:    2 * time.Second,
		},
		Prefix:         "imgate-test-" + clustertest.RandHex(6) + ".",
		PublishTimeout: 15 * time.Second,
	}.withDefaults()
	queues := append([]string{}, nodeQueues...)
	t.Cleanup(func() {
		ch, err := admin.Channel()
		if err != nil {
			return
		}
		defer ch.Close()
		for _, q := range append([]string{cfg.SaveQueue}, queues...) {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		_ = ch.ExchangeDelete(cfg.Exchange, false, false)
		_ = ch.ExchangeDelete(cfg.SaveExchange, false, false)
		_ = ch.ExchangeDelete(cfg.RouteExchange, false, false)
	})
	return cfg, &queues
}

// busWaitFor polls cond until it holds or d passes.
func busWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, d, what, cond)
}

func busRecord(id int64, from, to, node string) message.Record {
	return message.Record{
		Msg: codec.ChatMsg{
			SenderID:    from,
			ReceiverID:  to,
			Msg:         "hello",
			MsgType:     codec.Words,
			MsgID:       id,
			ClientMsgID: "c-" + clustertest.RandHex(2),
			ChatTime:    time.Now().UTC().Truncate(time.Millisecond),
			Extra:       []byte(`"w": 640, "h":480`),
		},
		SenderConn: 1001,
		Node:       node,
	}
}

// busStore is an idempotent fake of saver.Store.Save that assigns per-user seqs.
type busStore struct {
	mu    sync.Mutex
	seen  map[int64]message.Saved
	seqs  map[string]int64
	calls int
	fail  int // fail the next fail calls
}

func newBusStore() *busStore {
	return &busStore{seen: map[int64]message.Saved{}, seqs: map[string]int64{}}
}

func (s *busStore) handle(_ context.Context, recs []message.Record, _ func()) ([]message.Saved, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail > 0 {
		s.fail--
		return nil, errors.New("store down")
	}
	out := make([]message.Saved, 0, len(recs))
	for _, r := range recs {
		if old, ok := s.seen[r.Msg.MsgID]; ok {
			// The same msgId again is a redelivery: pushed again, not a duplicate.
			old.SenderConn, old.Node = r.SenderConn, r.Node
			out = append(out, old)
			continue
		}
		s.seqs[r.Msg.ReceiverID]++
		rs := s.seqs[r.Msg.ReceiverID]
		ss := rs
		if r.Msg.SenderID != r.Msg.ReceiverID {
			s.seqs[r.Msg.SenderID]++
			ss = s.seqs[r.Msg.SenderID]
		}
		sv := message.Saved{Record: r, ReceiverSeq: rs, SenderSeq: ss}
		s.seen[r.Msg.MsgID] = sv
		out = append(out, sv)
	}
	return out, nil
}

func (s *busStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// busSink is the message.Sink of a test node: it collects what the bus delivers and
// the records it reports failed.
type busSink struct {
	mu      sync.Mutex
	ids     map[int64]int // msgId → times delivered
	batches []int
	failed  []error
	groups  [][]string // InvalidateGroups calls, nil for "every group"
}

var _ message.Sink = (*busSink)(nil)

func newBusSink() *busSink { return &busSink{ids: map[int64]int{}} }

func (k *busSink) Saved(batch []message.Saved) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.batches = append(k.batches, len(batch))
	for _, s := range batch {
		k.ids[s.Msg.MsgID]++
	}
}

func (k *busSink) InvalidateGroups(groupIDs []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.groups = append(k.groups, groupIDs)
}

func (k *busSink) invalidations() [][]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]string(nil), k.groups...)
}

func (k *busSink) Failed(recs []message.Record, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for range recs {
		k.failed = append(k.failed, err)
	}
}

func (k *busSink) distinct() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ids)
}

// newBusProxy returns a proxy to RabbitMQ that the test can cut and heal, and the
// URL that reaches the broker through it.
func newBusProxy(t *testing.T) (*clustertest.Proxy, string) {
	t.Helper()
	u, err := amqp.ParseURI(busTestURL())
	if err != nil {
		t.Fatal(err)
	}
	p := clustertest.NewProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	u.Host, u.Port = "127.0.0.1", p.Port()
	return p, u.String()
}

// submit publishes r alone as one batch and reports its confirm to done: the tests
// that count records per AMQP message use it instead of the batching Submit.
func (b *NodeBus) submit(r message.Record, done func(error)) error {
	if err := b.State(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel() // the deadline stays on the message; ctx only bounds the wait for a slot
	return b.pub.Submit(ctx, b.cfg.SaveExchange, b.cfg.SaveKey, wire.Encode(wire.Records, []message.Saved{{Record: r}}), done)
}
