package bus

import (
	"imgate/cluster/rabbit"

	"context"
	"errors"
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
	if !errors.Is(p.State(), rabbit.ErrUnavailable) {
		t.Fatalf("State = %v, want rabbit.ErrUnavailable", p.State())
	}

	var mu sync.Mutex
	var results []error
	long, cancelLong := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelLong()
	for i := range 4 {
		body := wire.Encode(wire.Records, []message.Saved{{Record: busRecord(int64(100+i), "a", "b", "n")}})
		if err := p.Submit(long, cfg.SaveExchange, cfg.SaveKey, body, func(err error) {
			mu.Lock()
			results = append(results, err)
			mu.Unlock()
		}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	if err := p.Submit(gone, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`), nil); !errors.Is(err, rabbit.ErrFull) {
		t.Fatalf("5th Submit = %v, want rabbit.ErrFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`))
	cancel()
	if !errors.Is(err, rabbit.ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish with a full window = %v, want rabbit.ErrFull and the deadline", err)
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
	if p.Pending() != 0 {
		t.Errorf("pending = %d after confirms", p.Pending())
	}
	busWaitFor(t, 5*time.Second, "save queue holds the 4", func() bool { return busQueueLen(t, cfg.SaveQueue) == 4 })
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`)); err != nil {
		t.Fatalf("window not freed: %v", err)
	}
}

// TestRabbitPublisherReturnedIsFailure: a mandatory message nobody can route is
// reported as rabbit.ErrReturned, although the broker also confirms it.
func TestRabbitPublisherReturnedIsFailure(t *testing.T) {
	cfg, _ := busTestConfig(t)
	p := newTestPublisher(t, cfg)
	busReady(t, p.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The fanout exchange has no node queue bound yet.
	if err := p.publish(ctx, cfg.Exchange, "", []byte(`{}`)); !errors.Is(err, rabbit.ErrReturned) {
		t.Errorf("publish to an unbound fanout = %v, want rabbit.ErrReturned", err)
	}
	if err := p.publish(ctx, cfg.SaveExchange, "no-such-key", []byte(`{}`)); !errors.Is(err, rabbit.ErrReturned) {
		t.Errorf("publish with an unbound key = %v, want rabbit.ErrReturned", err)
	}
	if err := p.publish(ctx, cfg.SaveExchange, cfg.SaveKey, []byte(`{}`)); err != nil {
		t.Errorf("routable publish = %v", err)
	}
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
	busWaitFor(t, 10*time.Second, "reconnected", func() bool { return node.r.Load().Connects() >= 2 && node.State() == nil })
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
	if err := a.Submit(busRecord(1, "h", "i", "a")); !errors.Is(err, rabbit.ErrUnavailable) {
		t.Errorf("Submit while down = %v, want rabbit.ErrUnavailable", err)
	}
	// Records handed to the publisher during the outage wait for the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range during {
		body := wire.Encode(wire.Records, []message.Saved{{Record: busRecord(int64(20_000+i), "h", "i", "a")}})
		if err := a.pub.Submit(ctx, cfg.SaveExchange, cfg.SaveKey, body, done); err != nil {
			t.Fatalf("publish during outage: %v", err)
		}
	}
	proxy.Heal()
	busWaitFor(t, 15*time.Second, "every record confirmed", func() bool { return ok.Load()+failed.Load() == before+during })
	busWaitFor(t, 15*time.Second, "node B received everything", func() bool { return sb.distinct() == before+during })
	busWaitFor(t, 15*time.Second, "node A received everything", func() bool { return sa.distinct() == before+during })
	if a.r.Load().Connects() < 2 {
		t.Errorf("connects = %d, want a reconnect", a.r.Load().Connects())
	}
}

// testPublisher is a publisher with a connection of its own that declares the bus
// topology (both exchanges, the save queue and its binding); its messages are persistent.
type testPublisher struct {
	*rabbit.Publisher
	r *rabbit.Conn
}

// newTestPublisher starts a testPublisher, closed at cleanup; it returns at once.
func newTestPublisher(t *testing.T, cfg Config) *testPublisher {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	p := &testPublisher{Publisher: rabbit.NewPublisher(cfg.Config)}
	p.r = rabbit.New(cfg.Config, &rabbitTopology{cfg: cfg}, p.Publisher)
	t.Cleanup(func() {
		p.Drain(cfg.CloseTimeout)
		p.r.Close()
		p.FailAll(rabbit.ErrClosed)
	})
	return p
}

func (p *testPublisher) State() error                    { return p.r.State() }
func (p *testPublisher) Ready(ctx context.Context) error { return p.r.Ready(ctx) }

// publish sends body to exchange with routing key and waits for the broker's
// confirm. ctx must have a deadline: the message fails with ErrPublishTimeout then.
// While the broker is down the message waits for the next connection within ctx.
func (p *testPublisher) publish(ctx context.Context, exchange, key string, body []byte) error {
	if _, ok := ctx.Deadline(); !ok {
		panic("publish needs a ctx with a deadline")
	}
	res := make(chan error, 1)
	if err := p.Submit(ctx, exchange, key, body, func(err error) { res <- err }); err != nil {
		return err
	}
	return <-res
}
