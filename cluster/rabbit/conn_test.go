package rabbit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// queueComponent declares a transient queue on every connection: the smallest topology.
type queueComponent struct{ name string }

func (q queueComponent) Start(s *Session) error {
	ch, err := s.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclare(q.name, false, true, false, false, nil)
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
	p := NewPublisher(Config{}, false)
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
	// The queue is auto-delete; declaring it durable makes the broker close the channel (406).
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
	p := NewPublisher(Config{}, false)
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
