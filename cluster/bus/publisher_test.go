package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// TestRabbitPublisherConfirmWindow: at most ConfirmWindow messages wait for their
// confirm; they are kept while the broker is unreachable and sent once it answers.
func TestRabbitPublisherConfirmWindow(t *testing.T) {
	cfg, _ := busTestConfig(t)
	proxy, url := newBusProxy(t)
	proxy.Cut()
	cfg.URL = url
	cfg.ConfirmWindow = 4
	p := newTestPublisher(t, cfg)
	if !errors.Is(p.State(), ErrUnavailable) {
		t.Fatalf("State = %v, want ErrUnavailable", p.State())
	}

	var mu sync.Mutex
	var results []error
	for i := range 4 {
		body := wire.Encode(wire.Records, []message.Saved{{Record: busRecord(int64(100+i), "a", "b", "n")}})
		if err := p.publishAsync(cfg.SaveExchange, cfg.SaveKey, body, func(err error) {
			mu.Lock()
			results = append(results, err)
			mu.Unlock()
		}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := p.publishAsync(cfg.SaveExchange, cfg.SaveKey, []byte(`{}`), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("5th publishAsync = %v, want ErrFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`))
	cancel()
	if !errors.Is(err, ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish with a full window = %v, want ErrFull and the deadline", err)
	}

	proxy.Heal()
	busWaitFor(t, 10*time.Second, "the 4 queued messages confirmed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) == 4
	})
	for i, err := range results {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	if p.pending() != 0 {
		t.Errorf("pending = %d after confirms", p.pending())
	}
	busWaitFor(t, 5*time.Second, "save queue holds the 4", func() bool { return busQueueLen(t, cfg.SaveQueue) == 4 })
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`)); err != nil {
		t.Fatalf("window not freed: %v", err)
	}
}

// TestRabbitPublisherReturnedIsFailure: a mandatory message nobody can route is
// reported as ErrReturned, although the broker also confirms it.
func TestRabbitPublisherReturnedIsFailure(t *testing.T) {
	cfg, _ := busTestConfig(t)
	p := newTestPublisher(t, cfg)
	busReady(t, p.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The fanout exchange has no node queue bound yet.
	if err := p.publish(ctx, cfg.Exchange, "", []byte(`{}`)); !errors.Is(err, ErrReturned) {
		t.Errorf("publish to an unbound fanout = %v, want ErrReturned", err)
	}
	if err := p.publish(ctx, cfg.SaveExchange, "no-such-key", []byte(`{}`)); !errors.Is(err, ErrReturned) {
		t.Errorf("publish with an unbound key = %v, want ErrReturned", err)
	}
	done := make(chan error, 1)
	if err := p.publishAsync(cfg.SaveExchange, "no-such-key", []byte(`{}`), func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrReturned) {
		t.Errorf("async unroutable = %v, want ErrReturned", err)
	}
	if err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`)); err != nil {
		t.Errorf("routable publish = %v", err)
	}
}

// TestRabbitRecoversAfterServerClosesChannel: the broker closes the publishing
// channel (a declaration with conflicting arguments); the bus reconnects,
// redeclares, consumes again, and carries messages end to end.
func TestRabbitRecoversAfterServerClosesChannel(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 10)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)
	busSaver(t, cfg, newBusStore().handle)

	node.pub.mu.Lock()
	ch := node.pub.ch
	node.pub.mu.Unlock()
	// The save queue is durable: declaring it transient makes the broker close the channel (406).
	if _, err := ch.QueueDeclare(cfg.SaveQueue, false, false, false, false, nil); err == nil {
		t.Fatal("conflicting declaration accepted")
	}
	busWaitFor(t, 10*time.Second, "reconnected", func() bool { return node.r.Load().connects.Load() >= 2 && node.State() == nil })
	for i := range 10 {
		if err := node.Submit(busRecord(int64(300+i), "f", "g", "a")); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "delivered after recovery", func() bool { return sink.distinct() == 10 })
}

// TestRabbitRecoversAfterQueueDeleted: the broker cancels the consumer of a
// deleted node queue; the bus declares it again and consumes.
func TestRabbitRecoversAfterQueueDeleted(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 11)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)
	busSaver(t, cfg, newBusStore().handle)
	busDeleteQueues(t, qa)
	busWaitFor(t, 10*time.Second, "reconnected", func() bool { return node.r.Load().connects.Load() >= 2 && node.State() == nil })
	for i := range 10 {
		if err := node.Submit(busRecord(int64(400+i), "f", "g", "a")); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "delivered after recovery", func() bool { return sink.distinct() == 10 })
}

// TestRabbitConnectionDropLosesNothing: a node's TCP connection is cut while it
// publishes; unconfirmed records and those queued during the outage are sent
// again after it, and every message reaches both nodes (the cut node's queue
// survives the outage).
func TestRabbitConnectionDropLosesNothing(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa, qb := cfg.NodeQueue("127.0.0.1", 12), cfg.NodeQueue("127.0.0.1", 13)
	t.Cleanup(func() { busDeleteQueues(t, qa, qb) })
	proxy, url := newBusProxy(t)
	pcfg := cfg
	pcfg.URL = url
	sa, sb := newBusSink(), newBusSink()
	a := busNode(t, pcfg, qa, sa)
	busNode(t, cfg, qb, sb)
	busSaver(t, cfg, newBusStore().handle)

	var failed, ok atomic.Int32
	done := func(err error) {
		if err != nil {
			failed.Add(1)
			t.Errorf("publish failed: %v", err)
			return
		}
		ok.Add(1)
	}
	const before, during = 300, 50
	for i := range before {
		if err := a.submit(busRecord(int64(10_000+i), "h", "i", "a"), done); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	proxy.Cut() // some of the 300 are unconfirmed now
	busWaitFor(t, 5*time.Second, "node A sees the broker down", func() bool { return a.State() != nil })
	if err := a.Submit(busRecord(1, "h", "i", "a")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Submit while down = %v, want ErrUnavailable", err)
	}
	// Records handed to the publisher during the outage wait for the connection.
	for i := range during {
		body := wire.Encode(wire.Records, []message.Saved{{Record: busRecord(int64(20_000+i), "h", "i", "a")}})
		if err := a.pub.publishAsync(cfg.SaveExchange, cfg.SaveKey, body, done); err != nil {
			t.Fatalf("publish during outage: %v", err)
		}
	}
	proxy.Heal()
	busWaitFor(t, 15*time.Second, "every record confirmed", func() bool { return ok.Load()+failed.Load() == before+during })
	busWaitFor(t, 15*time.Second, "node B received everything", func() bool { return sb.distinct() == before+during })
	busWaitFor(t, 15*time.Second, "node A received everything", func() bool { return sa.distinct() == before+during })
	t.Logf("messages sent again after the reconnect: %d", a.pub.resent.Load())
	if a.r.Load().connects.Load() < 2 {
		t.Errorf("connects = %d, want a reconnect", a.r.Load().connects.Load())
	}
}

// testPublisher is a publisher with a connection of its own that declares the bus
// topology (both exchanges, the save queue and its binding); its messages are persistent.
type testPublisher struct {
	*publisher
	r *rabbit
}

// newTestPublisher starts a testPublisher, closed at cleanup; it returns at once.
func newTestPublisher(t *testing.T, cfg Config) *testPublisher {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	p := &testPublisher{publisher: newPublisher(cfg, true)}
	p.r = newRabbit(cfg, &rabbitTopology{cfg: cfg}, p.publisher)
	t.Cleanup(func() {
		p.drain(p.closeWait)
		p.r.close()
		p.failAll(ErrBusClosed)
	})
	return p
}

func (p *testPublisher) State() error                    { return p.r.State() }
func (p *testPublisher) Ready(ctx context.Context) error { return p.r.ready(ctx) }

// publish sends body to exchange with routing key and waits for the broker's
// confirm. Waiting for a window slot and for the confirm are bounded by ctx; a
// message whose ctx ends is not sent again, but may already have been delivered.
// While the broker is down the message waits for the next connection within ctx.
func (p *publisher) publish(ctx context.Context, exchange, key string, body []byte) error {
	res := make(chan error, 1)
	e, err := p.submit(ctx, exchange, key, body, func(err error) { res <- err })
	if err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		p.abandon(e, fmt.Errorf("bus: publish: %w", ctx.Err()))
		return <-res
	}
}
