package bus

import (
	"imgate/cluster/rabbit"

	"context"
	"fmt"
	"sync"
	"time"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// errAccumulatorFull is returned by accumulator.add when BatchPending records already
// wait for their batch: the node answers ERROR unavailable and the client retries.
var errAccumulatorFull = fmt.Errorf("%w: too many records waiting for their batch", rabbit.ErrFull)

// batchLimits bound one batch on the wire and the records waiting for one.
type batchLimits struct {
	records int           // most records in one AMQP message
	bytes   int           // most encoded bytes in one AMQP message (one record may exceed it alone)
	linger  time.Duration // longest a record waits for company while a batch is unconfirmed
	pending int           // most records waiting to be batched; add fails beyond
}

// accumulator gathers the records a node accepts (on its event loops) into batches and
// publishes each batch as one AMQP message from its own goroutine.
//
// A batch leaves as soon as nothing is waiting for a confirm (an idle node adds no
// delay); while one is unconfirmed, records wait up to linger for company, or until a
// batch is full. The publish may block on the publisher's confirm window: records then
// pile up in pending, up to its bound, which is the backpressure event loops see.
type accumulator struct {
	kind    wire.Kind
	limits  batchLimits
	publish func(ctx context.Context, body []byte, done func(error)) error
	busy    func() bool // something published is not confirmed yet
	// outcome gets each batch's outcome once: nil when the broker confirmed it, else
	// why its records were not published (then their senders must be told).
	outcome func(recs []message.Record, err error)

	mu      sync.Mutex
	pending []message.Record // guarded by mu
	bytes   int              // guarded by mu: estimated encoded size of pending
	closed  bool             // guarded by mu

	wake chan struct{} // cap 1: pending got a record
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
}

func newAccumulator(kind wire.Kind, limits batchLimits, publish func(context.Context, []byte, func(error)) error,
	busy func() bool, outcome func([]message.Record, error)) *accumulator {
	a := &accumulator{kind: kind, limits: limits, publish: publish, busy: busy, outcome: outcome,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.ctx, a.stop = context.WithCancel(context.Background())
	go a.run()
	return a
}

// add queues r for the next batch without blocking.
func (a *accumulator) add(r message.Record) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return rabbit.ErrClosed
	}
	if len(a.pending) >= a.limits.pending {
		a.mu.Unlock()
		return errAccumulatorFull
	}
	a.pending = append(a.pending, r)
	a.bytes += estimate(&r)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// estimate is an upper bound of the encoded size of r (its frame included).
func estimate(r *message.Record) int {
	m := &r.Msg
	return 80 + len(m.SenderID) + len(m.ReceiverID) + len(m.Msg) + len(m.ClientMsgID) + len(r.Node) + len(m.Extra)
}

// take removes the next batch from pending: up to limits.records records and
// limits.bytes bytes (at least one record).
func (a *accumulator) take() []message.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, size := 0, 0
	for n < len(a.pending) && n < a.limits.records {
		s := estimate(&a.pending[n])
		if n > 0 && size+s > a.limits.bytes {
			break
		}
		size += s
		n++
	}
	out := make([]message.Record, n)
	copy(out, a.pending)
	rest := copy(a.pending, a.pending[n:])
	clear(a.pending[rest:])
	a.pending = a.pending[:rest]
	a.bytes -= size
	return out
}

// full reports whether pending holds a whole batch.
func (a *accumulator) full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending) >= a.limits.records || a.bytes >= a.limits.bytes
}

func (a *accumulator) empty() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending) == 0
}

func (a *accumulator) run() {
	defer close(a.done)
	enc := wire.NewEncoder(a.kind)
	var linger *time.Timer
	for {
		if a.empty() {
			if a.isClosed() {
				return
			}
			select {
			case <-a.wake:
			case <-a.ctx.Done():
				return
			}
		}
		if a.limits.linger > 0 && !a.isClosed() && a.busy() && !a.full() {
			if linger == nil {
				linger = time.NewTimer(a.limits.linger)
			} else {
				linger.Reset(a.limits.linger)
			}
		wait:
			for !a.full() {
				select {
				case <-a.wake:
				case <-linger.C:
					break wait
				case <-a.ctx.Done():
					linger.Stop()
					return
				}
			}
			linger.Stop()
		}
		recs := a.take()
		if len(recs) == 0 {
			continue
		}
		enc.Reset()
		for i := range recs {
			enc.Add(&message.Saved{Record: recs[i]})
		}
		err := a.publish(a.ctx, enc.Bytes(), func(err error) { a.outcome(recs, err) })
		if err != nil {
			a.outcome(recs, err)
		}
	}
}

func (a *accumulator) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// close stops taking records and publishes what is pending, waiting up to wait for
// it to be handed to the publisher; records still pending then fail with rabbit.ErrClosed.
// Batches already handed to the publisher are the publisher's (its close drains or
// fails them).
func (a *accumulator) close(wait time.Duration) {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(wait)
	select {
	case <-a.done:
	case <-t.C:
	}
	t.Stop()
	a.stop()
	<-a.done
	for rest := a.take(); len(rest) > 0; rest = a.take() {
		a.outcome(rest, rabbit.ErrClosed)
	}
}
