package saver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"imgate/message"
)

// BatcherConfig configures [NewBatcher]. The zero value of every field is its documented
// default.
type BatcherConfig struct {
	// MaxBatch is the most records saved in one Store.Save transaction. Default 256.
	MaxBatch int
	// QueueLen bounds the records waiting to be saved; Submit returns ErrFull beyond it.
	// Default 8192.
	QueueLen int
	// SaveTimeout bounds one Store.Save call. Default 10s.
	SaveTimeout time.Duration
	// Logger receives failed batches. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero (or negative) field set to its default.
func (c BatcherConfig) withDefaults() BatcherConfig {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8192
	}
	if c.SaveTimeout <= 0 {
		c.SaveTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Batcher groups Records into Store.Save transactions (group commit) behind a bounded
// queue.
//
// Lifecycle: [NewBatcher] builds it, [Batcher.Start] gives it the sink it reports to
// (once) and starts its goroutine, [Batcher.Close] stops it. Submit may be called before
// Start: records queue (up to QueueLen, ErrFull beyond) and are saved once Start runs.
// This is what breaks the cycle with the node: the node takes the Batcher as its outbox
// when it is built, and the Batcher is started with the node as its sink afterwards.
//
// Concurrency contract: Submit may be called from any goroutine, including
// event loops (Submit never blocks); Close may be called from any goroutine but the
// sink's. One goroutine, started by Start and ended by Close, takes whatever is queued
// (up to MaxBatch records, without waiting for more when the queue is idle), saves it
// and calls the sink; batches are therefore saved and reported strictly in submission
// order.
type Batcher struct {
	store   Store
	sink    message.Sink // set once by Start, before the goroutine starts
	cfg     BatcherConfig
	log     *slog.Logger
	queue   chan message.Record
	done    chan struct{}      // closed when run returns (by Close when never started)
	ctx     context.Context    // parent of every Save; canceled by abort
	abort   context.CancelFunc // called when Close's context expires
	mu      sync.RWMutex       // guards started, closed and the close of queue
	started bool               // guarded by mu
	closed  bool               // guarded by mu
	closeMu sync.Mutex         // serializes Close calls
}

// NewBatcher returns a Batcher saving into store. It saves nothing until Start; stop it
// with Close.
func NewBatcher(store Store, cfg BatcherConfig) *Batcher {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Batcher{
		store: store,
		cfg:   cfg,
		log:   cfg.Logger,
		queue: make(chan message.Record, cfg.QueueLen),
		done:  make(chan struct{}),
		ctx:   ctx,
		abort: cancel,
	}
}

// Start starts the goroutine that saves the queued records and reports every batch to
// sink. It is called once: a second Start, a Start after Close or a nil sink panics (a
// wiring mistake, not a runtime condition).
func (b *Batcher) Start(sink message.Sink) {
	if sink == nil {
		panic("saver: Batcher.Start with a nil sink")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.started:
		panic("saver: Batcher.Start called twice")
	case b.closed:
		panic("saver: Batcher.Start after Close")
	}
	b.started = true
	b.sink = sink
	go b.run()
}

// Submit queues r for saving without blocking. It returns an error wrapping
// [message.ErrInvalid] when r fails [message.Record.Validate] (answer bad_request),
// ErrFull when the queue is full and ErrClosed after Close (answer unavailable); on any
// error r was not queued and the sink will not hear of it. Before Start, r waits in the
// queue.
func (b *Batcher) Submit(r message.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.queue <- r:
		return nil
	default:
		return ErrFull
	}
}

// Close stops accepting records, saves what is queued and waits for the goroutine to
// end. If ctx expires first, the Save in flight is canceled, the records still queued
// are reported to the sink's Failed with ErrClosed, and Close returns ctx's error once the
// goroutine has ended. A Batcher never started has no sink to report to: Close drops
// what it queued. Close is idempotent.
func (b *Batcher) Close(ctx context.Context) error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
		if !b.started {
			close(b.done)
		}
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		b.abort()
		return nil
	case <-ctx.Done():
		b.abort()
		<-b.done
		return wrapCtx(ctx.Err())
	}
}

// run is the Batcher's goroutine.
func (b *Batcher) run() {
	defer close(b.done)
	for {
		r, ok := <-b.queue
		if !ok {
			return
		}
		batch := make([]message.Record, 1, min(b.cfg.MaxBatch, 1+len(b.queue)))
		batch[0] = r
	fill:
		for len(batch) < b.cfg.MaxBatch {
			select {
			case r, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.flush(batch)
	}
}

// flush saves one batch and reports it.
func (b *Batcher) flush(batch []message.Record) {
	if b.ctx.Err() != nil {
		b.sink.Failed(batch, ErrClosed)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.SaveTimeout)
	saved, err := b.store.Save(ctx, batch)
	cancel()
	if err != nil {
		b.log.Warn("saver: batch not saved", "records", len(batch), "err", err)
		b.sink.Failed(batch, err)
		return
	}
	b.sink.Saved(saved)
}
