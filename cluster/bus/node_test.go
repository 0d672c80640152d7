package bus

import (
	"imgate/cluster/rabbit"

	"context"
	"errors"
	"testing"
	"time"
)

// TestNodeBusSubmitBeforeStart: a bus that was not started refuses records as unavailable
// and is ready only once started; closing it unstarted is clean.
func TestNodeBusSubmitBeforeStart(t *testing.T) {
	b, err := NewNodeBus(Config{}, "imgate-test-unstarted", "unstarted")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(busRecord(1, "a", "b", "n")); !errors.Is(err, rabbit.ErrUnavailable) {
		t.Errorf("Submit before Start = %v, want rabbit.ErrUnavailable", err)
	}
	if err := b.Relay(busRecord(2, "a", "b", "n")); !errors.Is(err, rabbit.ErrUnavailable) {
		t.Errorf("Relay before Start = %v, want rabbit.ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Ready(ctx); !errors.Is(err, rabbit.ErrUnavailable) {
		t.Errorf("Ready before Start = %v, want rabbit.ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, rabbit.ErrClosed) {
		t.Errorf("Ready after Close = %v, want rabbit.ErrClosed", err)
	}
}

// TestNodeBusSubmitReportsUnconfirmedToSink: a record the broker refuses after Submit
// accepted it (the save queue is at its bound: nacked) reaches the sink's Failed, which is
// how the node answers its sender ERROR unavailable.
func TestNodeBusSubmitReportsUnconfirmedToSink(t *testing.T) {
	cfg, _ := busTestConfig(t)
	cfg.SaveQueueMaxLen = 1 // no saver runs: the second batch is over the bound
	qa := cfg.NodeQueue("127.0.0.1", 20)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)
	for i := range 3 {
		if err := node.Submit(busRecord(int64(900+i), "j", "k", "a")); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if i == 0 {
			// The first batch fills the queue; the next two records travel in later batches.
			busWaitFor(t, 10*time.Second, "the first batch in the save queue", func() bool { return busQueueLen(t, node.cfg.SaveQueue) == 1 })
		}
	}
	busWaitFor(t, 10*time.Second, "two records reported failed", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.failed) == 2
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, err := range sink.failed {
		if !errors.Is(err, rabbit.ErrNacked) {
			t.Errorf("Failed with %v, want rabbit.ErrNacked", err)
		}
	}
}
