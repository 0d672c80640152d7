package saver_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
)

// gatedStore is a Memory whose Save waits on gate (when set) and can fail.
type gatedStore struct {
	*saver.Memory
	entered chan int      // receives len(recs) when a Save starts
	gate    chan struct{} // Save waits for a value or ctx
	fail    error
}

func (g *gatedStore) Save(ctx context.Context, recs []message.Record) ([]message.Saved, error) {
	if g.entered != nil {
		g.entered <- len(recs)
	}
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if g.fail != nil {
		return nil, g.fail
	}
	return g.Memory.Save(ctx, recs)
}

// recSink collects what the Batcher reports.
type recSink struct {
	mu      sync.Mutex
	batches [][]message.Saved
	failed  [][]message.Record
	errs    []error
	n       chan struct{} // one value per record reported
}

func newRecSink() *recSink { return &recSink{n: make(chan struct{}, 100000)} }

func (s *recSink) Saved(b []message.Saved) {
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
	for range b {
		s.n <- struct{}{}
	}
}

func (s *recSink) Failed(recs []message.Record, err error) {
	s.mu.Lock()
	s.failed = append(s.failed, recs)
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	for range recs {
		s.n <- struct{}{}
	}
}

// waitRecords waits until n records were reported.
func (s *recSink) waitRecords(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-s.n:
		case <-deadline:
			t.Fatalf("timed out waiting for %d reported records", n)
		}
	}
}

func mkRec(i int) message.Record {
	return message.Record{Msg: codec.ChatMsg{SenderID: fmt.Sprintf("s%d", i%7), ReceiverID: "r", MsgID: int64(i + 1), MsgType: codec.Words, ClientMsgID: fmt.Sprintf("c%d", i)}}
}

func closeBatcher(t *testing.T, b *saver.Batcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestBatcherSavesInSubmissionOrder(t *testing.T) {
	sink := newRecSink()
	b := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{MaxBatch: 16})
	b.Start(sink)
	const n = 500
	for i := range n {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	sink.waitRecords(t, n)
	closeBatcher(t, b)
	next := int64(1)
	for _, batch := range sink.batches {
		if len(batch) == 0 || len(batch) > 16 {
			t.Errorf("batch of %d records, want 1..16", len(batch))
		}
		for _, s := range batch {
			if s.Msg.MsgID != next || s.ReceiverSeq != next {
				t.Fatalf("got msgId %d seq %d, want %d in order", s.Msg.MsgID, s.ReceiverSeq, next)
			}
			next++
		}
	}
}

func TestBatcherGroupsWhileStoreIsBusy(t *testing.T) {
	st := &gatedStore{Memory: saver.NewMemory(), entered: make(chan int, 100), gate: make(chan struct{})}
	sink := newRecSink()
	b := saver.NewBatcher(st, saver.BatcherConfig{MaxBatch: 10})
	b.Start(sink)
	if err := b.Submit(mkRec(0)); err != nil {
		t.Fatal(err)
	}
	if got := <-st.entered; got != 1 {
		t.Fatalf("first batch has %d records, want 1 (no delay when idle)", got)
	}
	for i := 1; i <= 25; i++ { // queued while the first Save is in flight
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for range 4 {
		st.gate <- struct{}{}
		if len(sizes) < 3 {
			sizes = append(sizes, <-st.entered)
		}
	}
	sink.waitRecords(t, 26)
	closeBatcher(t, b)
	if want := []int{10, 10, 5}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
}

func TestBatcherFullQueue(t *testing.T) {
	st := &gatedStore{Memory: saver.NewMemory(), entered: make(chan int, 100), gate: make(chan struct{})}
	sink := newRecSink()
	b := saver.NewBatcher(st, saver.BatcherConfig{MaxBatch: 8, QueueLen: 4})
	b.Start(sink)
	if err := b.Submit(mkRec(0)); err != nil {
		t.Fatal(err)
	}
	<-st.entered // the goroutine holds record 0; the queue is empty
	for i := 1; i <= 4; i++ {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	if err := b.Submit(mkRec(5)); !errors.Is(err, saver.ErrFull) {
		t.Fatalf("Submit on a full queue = %v, want ErrFull", err)
	}
	if n := saver.QueuedLen(b); n != 4 {
		t.Errorf("queued = %d, want 4", n)
	}
	close(st.gate)
	sink.waitRecords(t, 5)
	closeBatcher(t, b)
}

func TestBatcherReportsFailure(t *testing.T) {
	boom := errors.New("db down")
	st := &gatedStore{Memory: saver.NewMemory(), fail: boom}
	sink := newRecSink()
	b := saver.NewBatcher(st, saver.BatcherConfig{})
	b.Start(sink)
	for i := range 3 {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	sink.waitRecords(t, 3)
	closeBatcher(t, b)
	total := 0
	for i, recs := range sink.failed {
		total += len(recs)
		if !errors.Is(sink.errs[i], boom) {
			t.Errorf("Failed with %v, want %v", sink.errs[i], boom)
		}
	}
	if total != 3 || len(sink.batches) != 0 {
		t.Errorf("failed %d records and saved %d batches, want 3 and 0", total, len(sink.batches))
	}
}

func TestBatcherCloseFlushesQueue(t *testing.T) {
	st := &gatedStore{Memory: saver.NewMemory(), entered: make(chan int, 100), gate: make(chan struct{})}
	sink := newRecSink()
	b := saver.NewBatcher(st, saver.BatcherConfig{MaxBatch: 4})
	b.Start(sink)
	for i := range 10 {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-st.entered
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	// Submit fails once Close has started; poll for it.
	deadline := time.Now().Add(30 * time.Second)
	want := 10
	for i := 10; ; i++ {
		err := b.Submit(mkRec(i))
		if errors.Is(err, saver.ErrClosed) {
			break
		}
		if err == nil {
			want++ // accepted before Close started: it is flushed too
		}
		if time.Now().After(deadline) {
			t.Fatal("Submit still accepted after Close")
		}
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	saved := 0
	for _, batch := range sink.batches {
		saved += len(batch)
	}
	if saved != want || len(sink.failed) != 0 {
		t.Errorf("saved %d, failed %d batches; want %d saved", saved, len(sink.failed), want)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBatcherCloseDeadline(t *testing.T) {
	st := &gatedStore{Memory: saver.NewMemory(), entered: make(chan int, 100), gate: make(chan struct{})} // never opens
	sink := newRecSink()
	b := saver.NewBatcher(st, saver.BatcherConfig{MaxBatch: 2})
	b.Start(sink)
	for i := range 5 {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-st.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	failed := 0
	for _, recs := range sink.failed {
		failed += len(recs)
	}
	if failed != 5 {
		t.Errorf("%d records reported failed, want all 5", failed)
	}
	if !errors.Is(sink.errs[len(sink.errs)-1], saver.ErrClosed) {
		t.Errorf("queued records failed with %v, want ErrClosed", sink.errs[len(sink.errs)-1])
	}
}

func TestBatcherConcurrentSubmit(t *testing.T) {
	sink := newRecSink()
	b := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{QueueLen: 100000})
	b.Start(sink)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := b.Submit(mkRec(w*each + i)); err != nil {
					t.Errorf("Submit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeBatcher(t, b)
	seen := map[int64]bool{}
	for _, batch := range sink.batches {
		for _, s := range batch {
			if seen[s.Msg.MsgID] {
				t.Fatalf("msgId %d reported twice", s.Msg.MsgID)
			}
			seen[s.Msg.MsgID] = true
			if s.ReceiverSeq != int64(len(seen)) {
				t.Fatalf("receiver seq %d reported as record %d: message.Saved calls out of commit order", s.ReceiverSeq, len(seen))
			}
		}
	}
	if len(seen) != workers*each {
		t.Errorf("%d records saved, want %d", len(seen), workers*each)
	}
}

func TestBatcherRefusesInvalidRecord(t *testing.T) {
	sink := newRecSink()
	b := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{})
	b.Start(sink)
	bad := mkRec(0)
	bad.Msg.Msg = "nul\x00"
	if err := b.Submit(bad); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("Submit(invalid) = %v, want message.ErrInvalid", err)
	}
	closeBatcher(t, b)
	if err := b.Submit(mkRec(1)); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	if len(sink.batches)+len(sink.failed) != 0 {
		t.Errorf("sink heard of a refused record")
	}
}

// TestBatcherQueuesBeforeStart: records submitted before Start wait in the bounded queue
// and are saved, in order, once Start gives the Batcher its sink.
func TestBatcherQueuesBeforeStart(t *testing.T) {
	b := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{QueueLen: 3})
	for i := range 3 {
		if err := b.Submit(mkRec(i)); err != nil {
			t.Fatalf("Submit %d before Start: %v", i, err)
		}
	}
	if err := b.Submit(mkRec(3)); !errors.Is(err, saver.ErrFull) {
		t.Fatalf("Submit over the bound before Start: %v, want ErrFull", err)
	}
	sink := newRecSink()
	b.Start(sink)
	sink.waitRecords(t, 3)
	closeBatcher(t, b)
	var ids []int64
	for _, batch := range sink.batches {
		for _, s := range batch {
			ids = append(ids, s.Msg.MsgID)
		}
	}
	if fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("saved %v, want [1 2 3]", ids)
	}
}

// TestBatcherStartOnce: the sink is given once; Start again, or after Close, panics.
// Close of a Batcher never started returns at once.
func TestBatcherStartOnce(t *testing.T) {
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s did not panic", what)
			}
		}()
		f()
	}
	b := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{})
	b.Start(newRecSink())
	mustPanic("a second Start", func() { b.Start(newRecSink()) })
	closeBatcher(t, b)

	never := saver.NewBatcher(saver.NewMemory(), saver.BatcherConfig{})
	if err := never.Submit(mkRec(0)); err != nil {
		t.Fatal(err)
	}
	closeBatcher(t, never)
	if err := never.Submit(mkRec(1)); !errors.Is(err, saver.ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	mustPanic("Start after Close", func() { never.Start(newRecSink()) })
}
