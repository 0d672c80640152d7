package bus

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
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
// without single-active-consumer is replaced when empty; one that holds records is
// left alone and the error says what to do.
func TestBusReplacesAnEmptyLegacySaveQueue(t *testing.T) {
	cfg, _ := busTestConfig(t)
	declareLegacy := func() *amqp.Channel {
		t.Helper()
		ch, err := busAdmin(t).Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(cfg.SaveQueue, true, false, false, false,
			amqp.Table{"x-max-length": int64(1_000_000), "x-overflow": "reject-publish"}); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	t.Cleanup(func() { busDeleteQueues(t, cfg.SaveQueue) })

	// Holding a record: left alone, the saver is not ready and says why.
	ch := declareLegacy()
	if err := ch.PublishWithContext(context.Background(), "", cfg.SaveQueue, false, false, amqp.Publishing{Body: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	busWaitFor(t, 5*time.Second, "the legacy record queued", func() bool { return busQueueLen(t, cfg.SaveQueue) == 1 })
	c, err := NewSaveConsumer(cfg, newBusStore().handle, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err = c.Ready(ctx)
	cancel()
	_ = c.Close()
	if err == nil {
		t.Fatal("a saver started on a legacy save queue holding a record")
	}
	if busQueueLen(t, cfg.SaveQueue) != 1 {
		t.Fatal("the legacy queue's record is gone")
	}

	// Empty: replaced, and the new queue has one active consumer at a time.
	if _, err := ch.QueuePurge(cfg.SaveQueue, false); err != nil {
		t.Fatal(err)
	}
	busSaver(t, cfg, newBusStore().handle)
	ch2, err := busAdmin(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch2.QueueDeclare(cfg.SaveQueue, true, false, false, false,
		amqp.Table{"x-max-length": int64(1_000_000), "x-overflow": "reject-publish"})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed || !strings.Contains(ae.Reason, "x-single-active-consumer") {
		t.Fatalf("declaring the legacy arguments again: %v, want a precondition failure on x-single-active-consumer", err)
	}
}
