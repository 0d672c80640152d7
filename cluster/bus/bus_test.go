package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/message"
)

func busReady(t *testing.T, ready func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ready(ctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
}

func busNode(t *testing.T, cfg Config, queue string, sink *busSink) *NodeBus {
	t.Helper()
	b, err := NewNodeBus(cfg, queue, queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	b.Start(sink, sink)
	busReady(t, b.Ready)
	return b
}

func busSaver(t *testing.T, cfg Config, h SaveHandler) *SaveConsumer {
	t.Helper()
	c, err := NewSaveConsumer(cfg, h, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	busReady(t, c.Ready)
	return c
}

// TestBusNodeToSaverToTwoNodes: records a node submits are persisted by the saver
// handler, fanned out, and delivered in batches to both node queues.
func TestBusNodeToSaverToTwoNodes(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa, qb := cfg.NodeQueue("127.0.0.1", 1), cfg.NodeQueue("127.0.0.1", 2)
	t.Cleanup(func() { busDeleteQueues(t, qa, qb) })

	sa, sb := newBusSink(), newBusSink()
	a := busNode(t, cfg, qa, sa)
	// Node B's queue fills before B consumes, so B sees batches of what had arrived.
	busDeclareNodeQueue(t, cfg, qb)

	const n = 300
	var confirmed atomic.Int32
	for i := range n {
		err := a.submit(busRecord(int64(1000+i), "alice", "bob", "a"), func(err error) {
			if err != nil {
				t.Errorf("record %d failed: %v", i, err)
			}
			confirmed.Add(1)
		})
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	busWaitFor(t, 10*time.Second, "records confirmed", func() bool { return confirmed.Load() == n })

	store := newBusStore()
	busSaver(t, cfg, store.handle)
	busWaitFor(t, 10*time.Second, "node A receives every message", func() bool { return sa.distinct() == n })
	busWaitFor(t, 10*time.Second, "fan-out reaches node B's queue", func() bool { return busQueueLen(t, qb) > 0 })

	b := busNode(t, cfg, qb, sb)
	busWaitFor(t, 10*time.Second, "node B receives every message", func() bool { return sb.distinct() == n })
	sb.mu.Lock()
	maxBatch := 0
	for _, k := range sb.batches {
		maxBatch = max(maxBatch, k)
	}
	calls := len(sb.batches)
	sb.mu.Unlock()
	if maxBatch < 2 || calls >= n {
		t.Errorf("node B: %d deliver calls, largest batch %d: want batches of what had arrived", calls, maxBatch)
	}
	if b.State() != nil || a.State() != nil {
		t.Errorf("state: %v %v", a.State(), b.State())
	}
	// Acked after deliver: nothing is left or redelivered.
	busWaitFor(t, 5*time.Second, "node queues drained", func() bool { return busQueueLen(t, qa) == 0 && busQueueLen(t, qb) == 0 })
}

// TestBusSaveConsumerAcksOnlyAfterHandle: a batch whose handler has not returned is
// not acknowledged, and is redelivered to another saver when its consumer dies.
func TestBusSaveConsumerAcksOnlyAfterHandle(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 3)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)

	proxy, url := newBusProxy(t)
	pcfg := cfg
	pcfg.URL = url

	const n = 20
	var confirmed atomic.Int32
	for i := range n {
		if err := node.submit(busRecord(int64(5000+i), "carol", "dave", "a"), func(error) { confirmed.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "records confirmed", func() bool { return confirmed.Load() == n })
	entered := make(chan []message.Record, 64)
	release := make(chan struct{})
	first := busSaver(t, pcfg, func(ctx context.Context, recs []message.Record, _ func()) ([]message.Saved, error) {
		select {
		case entered <- recs:
		default:
		}
		<-release
		return nil, errors.New("saver died")
	})
	defer close(release)
	select {
	case <-entered: // the consumer loop is now stuck in the handler; the rest waits unacked
	case <-time.After(10 * time.Second):
		t.Fatal("saver handler never called")
	}
	// The handler holds the batch: nothing was acknowledged or delivered.
	if sink.distinct() != 0 {
		t.Fatal("delivered before the saver finished")
	}
	// The first saver's connection dies with the batch unacknowledged.
	proxy.Cut()
	busWaitFor(t, 5*time.Second, "first saver sees the broker down", func() bool { return first.State() != nil })

	store := newBusStore()
	busSaver(t, cfg, store.handle)
	busWaitFor(t, 10*time.Second, "batch redelivered to the second saver and delivered", func() bool {
		return store.count() == n && sink.distinct() == n
	})
	busWaitFor(t, 5*time.Second, "save queue empty", func() bool { return busQueueLen(t, cfg.SaveQueue) == 0 })
}

// TestBusSaveConsumerRetriesHandlerError: a handler error nacks with requeue; the
// batch comes back and succeeds.
func TestBusSaveConsumerRetriesHandlerError(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 4)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)
	store := newBusStore()
	store.fail = 2
	busSaver(t, cfg, store.handle)
	for i := range 10 {
		if err := node.Submit(busRecord(int64(7000+i), "erin", "erin", "a")); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "delivered after retries", func() bool { return sink.distinct() == 10 })
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.calls < 3 {
		t.Errorf("handler called %d times, want failures then success", store.calls)
	}
}

func busQueueLen(t *testing.T, queue string) int {
	t.Helper()
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

var busAdminShared atomic.Pointer[amqp.Connection]

func busAdminConn(t *testing.T) *amqp.Connection {
	t.Helper()
	if c := busAdminShared.Load(); c != nil && !c.IsClosed() {
		return c
	}
	c, err := amqp.Dial(busTestURL())
	if err != nil {
		t.Fatalf("RabbitMQ does not answer (%v): run scripts/services.sh up", err)
	}
	busAdminShared.Store(c)
	return c
}

func busDeclareNodeQueue(t *testing.T, cfg Config, queue string) {
	t.Helper()
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := (&rabbitTopology{cfg: cfg, nodeQueue: queue}).declareNodeQueue(busAdminConn(t), ch); err != nil {
		t.Fatal(err)
	}
}

func busDeleteQueues(t *testing.T, queues ...string) {
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
}
