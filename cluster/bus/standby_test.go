package bus

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/message"
)

// TestBusSecondSaverStandsBy: with two savers on one save queue, the first consumes
// everything and the second stands by; once the first is gone, the second takes over
// and nothing is lost. Savers consuming side by side interleaved one user's seqs and
// waited for each other's row locks.
func TestBusSecondSaverStandsBy(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 21)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)

	storeA, storeB := newBusStore(), newBusStore()
	first, err := NewSaveConsumer(cfg, storeA.handle, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	busReady(t, first.Ready)
	busSaver(t, cfg, storeB.handle)

	submit := func(from, n int) {
		t.Helper()
		var confirmed atomic.Int32
		for i := range n {
			if err := node.submit(busRecord(int64(from+i), "frank", "grace", "a"), func(error) { confirmed.Add(1) }); err != nil {
				t.Fatal(err)
			}
		}
		busWaitFor(t, 10*time.Second, "records confirmed", func() bool { return confirmed.Load() == int32(n) })
	}
	const n = 50
	submit(9000, n)
	busWaitFor(t, 10*time.Second, "every record delivered", func() bool { return sink.distinct() == n })
	if a, b := storeA.count(), storeB.count(); a != n || b != 0 {
		t.Fatalf("saved by the first saver %d, by the second %d: want %d and 0 (one active saver)", a, b, n)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	submit(9000+n, n)
	busWaitFor(t, 10*time.Second, "the second saver takes over", func() bool { return sink.distinct() == 2*n })
	if a, b := storeA.count(), storeB.count(); a != n || b != n {
		t.Errorf("saved by the first saver %d, by the second %d: want %d each", a, b, n)
	}
}

// TestBusReplacesAnEmptyLegacySaveQueue: a save queue an earlier version declared
// without single-active-consumer is replaced by a saver when it is empty and unused;
// while it holds records or an earlier saver consumes it, savers and nodes use it as it
// is, and nothing in it is lost.
func TestBusReplacesAnEmptyLegacySaveQueue(t *testing.T) {
	cfg, _ := busTestConfig(t)
	legacy := amqp.Table{"x-max-length": int64(1_000_000), "x-overflow": "reject-publish"}
	admin, err := busAdmin(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.QueueDeclare(cfg.SaveQueue, true, false, false, false, legacy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busDeleteQueues(t, cfg.SaveQueue) })
	isLegacy := func() bool {
		t.Helper()
		ch, err := busAdmin(t).Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclare(cfg.SaveQueue, true, false, false, false, legacy)
		var ae *amqp.Error
		if err != nil && (!errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed || !strings.Contains(ae.Reason, "x-single-active-consumer")) {
			t.Fatalf("declaring the legacy arguments again: %v", err)
		}
		return err == nil
	}

	// Holding a record: a node uses it as it is, and the record stays.
	if err := admin.PublishWithContext(context.Background(), "", cfg.SaveQueue, false, false, amqp.Publishing{Body: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	busWaitFor(t, 5*time.Second, "the legacy record queued", func() bool { return busQueueLen(t, cfg.SaveQueue) == 1 })
	qa := cfg.NodeQueue("127.0.0.1", 22)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	node := busNode(t, cfg, qa, newBusSink())
	if busQueueLen(t, cfg.SaveQueue) != 1 || !isLegacy() {
		t.Fatal("a node replaced a legacy save queue holding a record")
	}

	// Empty but consumed by an earlier saver: a new saver uses it as it is.
	if _, err := admin.QueuePurge(cfg.SaveQueue, false); err != nil {
		t.Fatal(err)
	}
	old, err := busAdmin(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Consume(cfg.SaveQueue, "earlier-saver", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	first := busSaver(t, cfg, newBusStore().handle)
	if !isLegacy() {
		t.Fatal("a saver replaced a legacy save queue an earlier saver consumes")
	}

	// Empty and unused: the next saver to connect replaces it.
	_ = old.Close()
	_ = first.Close()
	busSaver(t, cfg, newBusStore().handle)
	if isLegacy() {
		t.Fatal("an empty, unused legacy save queue was not replaced")
	}
	if node.State() != nil {
		t.Errorf("node: %v", node.State())
	}
}

// TestBusSaverStepsDownWhenItsStoreFails: the active saver whose store keeps failing (a
// saver cut off from PostgreSQL while its broker connection is fine) gives up its place,
// and the standby, whose store works, saves everything. Without it the batches went back
// to the failing saver again and again.
func TestBusSaverStepsDownWhenItsStoreFails(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa := cfg.NodeQueue("127.0.0.1", 23)
	t.Cleanup(func() { busDeleteQueues(t, qa) })
	sink := newBusSink()
	node := busNode(t, cfg, qa, sink)
	var failed atomic.Int32
	busSaver(t, cfg, func(context.Context, []message.Record, func()) ([]message.Saved, error) {
		failed.Add(1)
		return nil, errors.New("store unreachable")
	})
	good := newBusStore()
	busSaver(t, cfg, good.handle)

	const n = 20
	for i := range n {
		if err := node.Submit(busRecord(int64(9500+i), "heidi", "ivan", "a")); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 30*time.Second, "the standby saves every record", func() bool { return good.count() == n && sink.distinct() == n })
	if failed.Load() < stepDownAfter {
		t.Errorf("the failing saver was called %d times, want at least %d before it stepped down", failed.Load(), stepDownAfter)
	}
}
