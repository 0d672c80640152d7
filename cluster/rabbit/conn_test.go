package rabbit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// queueComponent declares an exclusive queue on every connection, the smallest topology;
// the broker deletes it with its connection, so tests leave nothing behind.
type queueComponent struct{ name string }

func (q queueComponent) Start(s *Session) error {
	ch, err := s.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclare(q.name, false, false, true, false, nil)
	return err
}

func (queueComponent) Stop() {}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRecoversAfterServerClosesChannel: the broker closes the publishing channel (a
// declaration with conflicting arguments); the connection ends, the manager reconnects,
// starts every component again, and the publisher carries messages on the new channel.
func TestRecoversAfterServerClosesChannel(t *testing.T) {
	queue := fmt.Sprintf("imgate.rabbit.test.%d", time.Now().UnixNano())
	p := NewPublisher(Config{})
	c := New(Config{URL: clustertest.AMQPURL(), ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond},
		queueComponent{queue}, p)
	t.Cleanup(func() { c.Close(); p.FailAll(ErrClosed) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("RabbitMQ does not answer (%v): run scripts/services.sh up", err)
	}
	if err := publish(ctx, p, queue); err != nil {
		t.Fatal(err)
	}

	p.mu.Lock()
	ch := p.ch
	p.mu.Unlock()
	// The queue is transient; declaring it durable makes the broker close the channel (406).
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err == nil {
		t.Fatal("conflicting declaration accepted")
	}
	waitFor(t, 10*time.Second, "reconnected", func() bool { return c.Connects() >= 2 && c.State() == nil })
	if err := publish(ctx, p, queue); err != nil {
		t.Fatalf("publish after recovery: %v", err)
	}
}

// TestPublisherFailsAfterClose: a publisher failed with FailAll refuses new messages.
func TestPublisherFailsAfterClose(t *testing.T) {
	p := NewPublisher(Config{})
	p.FailAll(ErrClosed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Submit(ctx, "", "q", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after FailAll = %v, want ErrClosed", err)
	}
}

func publish(ctx context.Context, p *Publisher, queue string) error {
	res := make(chan error, 1)
	if err := p.Submit(ctx, "", queue, []byte("x"), func(err error) { res <- err }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestReconnectsSoonAfterBrokerReturns cuts the broker off (a fault proxy refuses and
// drops connections) for longer than the backoff's floor, heals it, and measures how
// long the manager takes to be connected again and publishing. The backoff here is
// 10–20 s (ReconnectMin = ReconnectMax = 20s, minus jitter), so without the probe that
// cuts the wait short the reconnect would take 10 s or more; the deadline is 8 s.
func TestReconnectsSoonAfterBrokerReturns(t *testing.T) {
	u, err := url.Parse(clustertest.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := clustertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	queue := fmt.Sprintf("imgate.rabbit.test.%d", time.Now().UnixNano())
	cfg := Config{URL: u.String(), ReconnectMin: 20 * time.Second, ReconnectMax: 20 * time.Second}
	p := NewPublisher(cfg)
	c := New(cfg, queueComponent{queue}, p)
	t.Cleanup(func() { c.Close(); p.FailAll(ErrClosed) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("RabbitMQ does not answer through the proxy (%v): run scripts/services.sh up", err)
	}
	const rounds = 5
	var took []time.Duration
	for i := range rounds {
		silent := c.silent.Load()
		proxy.Cut()
		waitFor(t, 10*time.Second, "the connection is lost", func() bool { return c.State() != nil })
		// The outage lasts until the manager has seen the broker silent at least once.
		waitFor(t, 10*time.Second, "a probe goes unanswered", func() bool { return c.silent.Load() > silent })
		proxy.Heal()
		healed := time.Now()
		waitFor(t, 8*time.Second, "reconnected after the broker came back", func() bool { return c.State() == nil })
		if err := publish(ctx, p, queue); err != nil {
			t.Fatalf("round %d: publish after recovery: %v", i, err)
		}
		took = append(took, time.Since(healed))
	}
	slices.Sort(took)
	t.Logf("heal → connected and a publish confirmed, %d rounds: median %v, max %v (backoff 10–20 s, probe every %v)",
		rounds, took[rounds/2].Round(time.Millisecond), took[rounds-1].Round(time.Millisecond), c.cfg.ProbeInterval)
}
