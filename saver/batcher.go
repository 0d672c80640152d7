package saver

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"imgate/message"
)

// BatcherConfig configures [NewBatcher]. Zero values are the documented defaults.
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

// Batcher groups Records into Store.Save transactions (group commit) behind a bounded
// queue.
//
// Concurrency contract: Submit and Len may be called from any goroutine, including
// event loops (Submit never blocks); Close may be called from any goroutine but the
// sink's. One goroutine, started by NewBatcher and ended by Close, takes whatever is
// queued (up to MaxBatch records, without waiting for more when the queue is idle),
// saves it and calls the Sink; batches are therefore saved and reported strictly in
// submission order.
type Batcher struct {
	store   Store
	sink    message.Sink
	cfg     BatcherConfig
	log     *slog.Logger
	queue   chan message.Record
	done    chan struct{}      // closed when run returns
	ctx     context.Context    // parent of every Save; canceled by abort
	abort   context.CancelFunc // called when Close's context expires
	mu      sync.RWMutex       // guards closed against the close of queue
	closed  bool               // guarded by mu
	closeMu sync.Mutex         // serializes Close calls
}

// NewBatcher starts a Batcher saving into store and reporting to sink. Stop it with Close.
func NewBatcher(store Store, cfg BatcherConfig, sink message.Sink) *Batcher {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 8192
	}
	if cfg.SaveTimeout <= 0 {
		cfg.SaveTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		store: store,
		sink:  sink,
		cfg:   cfg,
		log:   cfg.Logger,
		queue: make(chan message.Record, cfg.QueueLen),
		done:  make(chan struct{}),
		ctx:   ctx,
		abort: cancel,
	}
	go b.run()
	return b
}

// Submit queues r for saving without blocking. It returns an error wrapping ErrInvalid
// when r fails [Record.Validate] (answer bad_request), ErrFull when the queue is full and
// ErrClosed after Close (answer unavailable); on any error r was not queued and the sink
// will not hear of it.
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
// are reported to Sink.Failed with ErrClosed, and Close returns ctx's error once the
// goroutine has ended. Close is idempotent.
func (b *Batcher) Close(ctx context.Context) error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
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
