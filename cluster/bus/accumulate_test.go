package bus

import (
	"imgate/cluster/rabbit"

	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgate/cluster/bus/wire"
	"imgate/codec"
	"imgate/message"
)

// fakePublisher records the batches an accumulator publishes. While hold is set,
// publish blocks, as a full confirm window does.
type fakePublisher struct {
	mu      sync.Mutex
	batches [][]message.Saved
	dones   []func(error)
	hold    chan struct{}
	busy    atomic.Bool
	fail    error
}

func (f *fakePublisher) publish(ctx context.Context, body []byte, done func(error)) error {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, recs, refused, err := wire.Decode(body)
	if err != nil || len(refused) > 0 {
		panic("accumulator wrote a bad batch")
	}
	f.mu.Lock()
	f.batches = append(f.batches, recs)
	f.dones = append(f.dones, done)
	f.mu.Unlock()
	if f.fail != nil {
		done(f.fail)
	}
	return nil
}

func (f *fakePublisher) counts() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

func (f *fakePublisher) total() int {
	n := 0
	for _, c := range f.counts() {
		n += c
	}
	return n
}

func rec(i int) message.Record {
	return message.Record{Msg: codec.ChatMsg{SenderID: "a", ReceiverID: "b", Msg: "m" + strconv.Itoa(i), MsgID: int64(i + 1)}, Node: "n"}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type failures struct {
	mu   sync.Mutex
	recs []message.Record
	errs []error
}

func (f *failures) failed(recs []message.Record, err error) {
	if err == nil {
		return // confirmed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, recs...)
	f.errs = append(f.errs, err)
}

func (f *failures) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

func TestAccumulatorBatchesWhileThePublisherIsBlocked(t *testing.T) {
	fp := &fakePublisher{hold: make(chan struct{})}
	var fl failures
	a := newAccumulator(wire.Records, batchLimits{records: 10, bytes: 1 << 20, linger: time.Hour, pending: 1000},
		fp.publish, fp.busy.Load, fl.failed)
	defer a.close(time.Second)
	// The first record leaves at once (nothing unconfirmed): no linger for an idle node.
	if err := a.add(rec(0)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first record taken", a.empty)
	// While its publish blocks (a full confirm window), 25 more arrive.
	for i := 1; i <= 25; i++ {
		if err := a.add(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(fp.hold)
	waitUntil(t, "26 records published", func() bool { return fp.total() == 26 })
	if got := fp.counts(); len(got) != 4 || got[0] != 1 || got[1] != 10 || got[2] != 10 || got[3] != 5 {
		t.Fatalf("batch sizes %v, want [1 10 10 5]", got)
	}
	// Order is kept across batches.
	want := int64(1)
	for _, b := range fp.batches {
		for _, s := range b {
			if s.Msg.MsgID != want {
				t.Fatalf("msgId %d, want %d", s.Msg.MsgID, want)
			}
			want++
		}
	}
}

func TestAccumulatorLingersOnlyWhileBusy(t *testing.T) {
	fp := &fakePublisher{}
	fp.busy.Store(true)
	var fl failures
	a := newAccumulator(wire.Records, batchLimits{records: 4, bytes: 1 << 20, linger: time.Hour, pending: 1000},
		fp.publish, fp.busy.Load, fl.failed)
	defer a.close(time.Second)
	for i := range 3 {
		_ = a.add(rec(i))
	}
	// Busy, not full, linger an hour: nothing leaves until the batch fills.
	_ = a.add(rec(3))
	waitUntil(t, "a full batch published", func() bool { return fp.total() == 4 })
	if got := fp.counts(); len(got) != 1 {
		t.Fatalf("batch sizes %v, want one batch of 4", got)
	}
}

func TestAccumulatorBoundsBytes(t *testing.T) {
	fp := &fakePublisher{hold: make(chan struct{})}
	var fl failures
	a := newAccumulator(wire.Records, batchLimits{records: 100, bytes: 1000, linger: 0, pending: 1000},
		fp.publish, fp.busy.Load, fl.failed)
	defer a.close(time.Second)
	big := func(i int) message.Record { r := rec(i); r.Msg.Msg = strings.Repeat("x", 400); return r }
	_ = a.add(big(0))
	waitUntil(t, "the first record taken", a.empty)
	for i := 1; i <= 5; i++ {
		_ = a.add(big(i))
	}
	close(fp.hold)
	waitUntil(t, "6 records published", func() bool { return fp.total() == 6 })
	for _, n := range fp.counts() {
		if n > 2 {
			t.Fatalf("batch sizes %v: a batch of ~480-byte records over 1000 bytes", fp.counts())
		}
	}
}

func TestAccumulatorRefusesBeyondPendingAndReportsFailures(t *testing.T) {
	fp := &fakePublisher{hold: make(chan struct{}), fail: errors.New("nacked")}
	var fl failures
	a := newAccumulator(wire.Records, batchLimits{records: 2, bytes: 1 << 20, pending: 3},
		fp.publish, fp.busy.Load, fl.failed)
	_ = a.add(rec(0))
	waitUntil(t, "the first record taken", a.empty)
	for i := 1; i <= 3; i++ {
		if err := a.add(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.add(rec(4)); !errors.Is(err, errAccumulatorFull) {
		t.Fatalf("add over the bound = %v, want errAccumulatorFull", err)
	}
	close(fp.hold)
	waitUntil(t, "4 failures reported", func() bool { return fl.count() == 4 })
	a.close(time.Second)
	if err := a.add(rec(5)); !errors.Is(err, rabbit.ErrClosed) {
		t.Fatalf("add after close = %v, want rabbit.ErrClosed", err)
	}
}

func TestAccumulatorCloseFlushesOrFails(t *testing.T) {
	fp := &fakePublisher{hold: make(chan struct{})}
	var fl failures
	a := newAccumulator(wire.Records, batchLimits{records: 2, bytes: 1 << 20, pending: 100},
		fp.publish, fp.busy.Load, fl.failed)
	for i := range 5 {
		_ = a.add(rec(i))
	}
	// The publisher never unblocks: close gives up after its wait and fails the rest.
	a.close(50 * time.Millisecond)
	if got := fl.count() + fp.total(); got != 5 {
		t.Fatalf("%d records failed + published, want 5", got)
	}
	if fl.count() == 0 {
		t.Fatal("nothing failed although the publisher was blocked")
	}
}
