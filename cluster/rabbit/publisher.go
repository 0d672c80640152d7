package rabbit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher sends transient messages (delivery mode 1) with publisher confirms over a
// managed connection: what a broker restart drops from a queue, its users recover
// (package bus: the store is the truth).
//
// At most Config.ConfirmWindow messages are queued or unconfirmed at a time.
// Every message is published mandatory: a message the broker returns as
// unroutable fails with ErrReturned even though the broker also confirms it.
//
// Reconnect semantics: a message is kept until the broker confirms it. When the
// channel or connection is lost, every unconfirmed message is sent again, in its
// original order, on the next connection, unless its deadline has passed (then it
// fails with ErrPublishTimeout) or its caller gave up. Delivery is therefore at
// least once: receivers deduplicate by msgId.
//
// Publisher is safe for concurrent use.
type Publisher struct {
	log       *slog.Logger
	latency   func(time.Duration) // Config.ConfirmLatency; nil: none
	window    chan struct{}       // one token per message queued or in flight
	nextID    atomic.Uint64
	wake      chan struct{} // cap 1: the queue got an entry
	closeWait time.Duration
	sweepStop chan struct{}
	sweepDone chan struct{}
	stopOnce  sync.Once

	mu       sync.Mutex
	queue    []*pubEntry          // waiting to be sent, in order
	inflight map[uint64]*pubEntry // delivery tag → entry sent on the current channel
	byID     map[string]*pubEntry // MessageId → in-flight entry, to match returns
	closed   bool                 // no new entries
	ch       *amqp.Channel        // current channel, nil when down (for tests)

	// per connection; owned by start/stop (called only from the manager goroutine)
	stopCh chan struct{}
	wg     sync.WaitGroup
}

// pubEntry is one message until it is confirmed or given up. Fields other than
// the constants are guarded by publisher.mu.
type pubEntry struct {
	id       string
	exchange string
	key      string
	body     []byte
	deadline time.Time // zero: none
	done     func(error)
	sent     time.Time // when it was last published (Config.ConfirmLatency)

	resolved bool // done was called (confirmed, failed, or the caller gave up)
	returned *amqp.Return
}

func NewPublisher(cfg Config) *Publisher {
	cfg = cfg.WithDefaults()
	p := &Publisher{
		log:       cfg.Logger,
		latency:   cfg.ConfirmLatency,
		closeWait: cfg.CloseTimeout,
		window:    make(chan struct{}, cfg.ConfirmWindow),
		wake:      make(chan struct{}, 1),
		inflight:  make(map[uint64]*pubEntry),
		byID:      make(map[string]*pubEntry),
		sweepStop: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	go p.sweepLoop()
	return p
}

// sweepLoop fails expired messages every 100ms until failAll.
func (p *Publisher) sweepLoop() {
	defer close(p.sweepDone)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			p.sweep(now)
		case <-p.sweepStop:
			return
		}
	}
}

// Submit waits within ctx for a slot in the confirm window and queues body for exchange
// with routing key; the message's deadline is ctx's. done (if not nil) is called exactly
// once, from another goroutine, with nil when the broker confirmed the message or the
// reason it failed (ErrReturned, ErrNacked, ErrPublishTimeout at the deadline, ErrClosed).
// Submit returns ErrFull (with ctx's error) when no slot freed up within ctx and ErrClosed
// after FailAll; done is not called then.
func (p *Publisher) Submit(ctx context.Context, exchange, key string, body []byte, done func(error)) error {
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w (%w)", ErrFull, ctx.Err())
	}
	e := p.entry(exchange, key, body, done)
	if dl, ok := ctx.Deadline(); ok {
		e.deadline = dl
	}
	return p.enqueue(e)
}

func (p *Publisher) entry(exchange, key string, body []byte, done func(error)) *pubEntry {
	if done == nil {
		done = func(error) {}
	}
	return &pubEntry{
		id:       strconv.FormatUint(p.nextID.Add(1), 10),
		exchange: exchange,
		key:      key,
		body:     body,
		done:     done,
	}
}

func (p *Publisher) enqueue(e *pubEntry) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.window
		return ErrClosed
	}
	p.queue = append(p.queue, e)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// resolveLocked marks e done and returns the callback to run after unlocking.
func (p *Publisher) resolveLocked(e *pubEntry, err error) func() {
	if e.resolved {
		return func() {}
	}
	e.resolved = true
	return func() { e.done(err) }
}

// Pending returns how many messages are queued or unconfirmed.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) + len(p.inflight)
}

// Drain stops new messages and waits up to d for the pending ones to finish.
func (p *Publisher) Drain(d time.Duration) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	deadline := time.Now().Add(d)
	for p.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// FailAll fails every remaining message with err and stops the sweeper; called
// after the connection manager stopped, so nothing is in flight.
func (p *Publisher) FailAll(err error) {
	p.stopOnce.Do(func() { close(p.sweepStop) })
	<-p.sweepDone
	p.mu.Lock()
	p.closed = true
	var cbs []func()
	for _, e := range p.queue {
		cbs = append(cbs, p.resolveLocked(e, err))
		<-p.window
	}
	p.queue = nil
	p.mu.Unlock()
	for _, cb := range cbs {
		cb()
	}
}

// Start puts a new channel in confirm mode and launches the send and confirm loops.
func (p *Publisher) Start(s *Session) error {
	ch, err := s.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("rabbit: confirm mode: %w", err)
	}
	n := cap(p.window) + 1
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n))
	returns := ch.NotifyReturn(make(chan amqp.Return, n))
	p.mu.Lock()
	p.ch = ch
	p.mu.Unlock()
	p.stopCh = make(chan struct{})
	p.wg.Add(2)
	go p.sendLoop(s, ch, p.stopCh)
	go p.confirmLoop(confirms, returns, p.stopCh)
	return nil
}

// Stop waits for the loops of the lost connection and puts every unconfirmed
// message back at the head of the queue, in publish order.
func (p *Publisher) Stop() {
	if p.stopCh == nil {
		return
	}
	close(p.stopCh)
	p.wg.Wait()
	p.stopCh = nil

	p.mu.Lock()
	p.ch = nil
	tags := make([]uint64, 0, len(p.inflight))
	for t := range p.inflight {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	resend := make([]*pubEntry, 0, len(tags)+len(p.queue))
	for _, t := range tags {
		e := p.inflight[t]
		e.returned = nil
		resend = append(resend, e)
	}
	p.queue = append(resend, p.queue...)
	clear(p.inflight)
	clear(p.byID)
	p.mu.Unlock()
	if len(tags) > 0 {
		p.log.Info("rabbit: unconfirmed messages will be sent again", "count", len(tags))
	}
}

// sendLoop publishes queued messages on ch until the connection is lost.
func (p *Publisher) sendLoop(s *Session, ch *amqp.Channel, stop <-chan struct{}) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-stop:
				return
			}
			p.mu.Lock()
		}
		e := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if e.resolved || (!e.deadline.IsZero() && time.Now().After(e.deadline)) {
			cb := p.resolveLocked(e, ErrPublishTimeout)
			p.mu.Unlock()
			<-p.window
			cb()
			continue
		}
		tag := ch.GetNextPublishSeqNo()
		if p.latency != nil {
			e.sent = time.Now()
		}
		p.inflight[tag] = e
		p.byID[e.id] = e
		p.mu.Unlock()

		err := ch.Publish(e.exchange, e.key, true, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Transient,
			MessageId:    e.id,
			Body:         e.body,
		})
		if err != nil {
			// The entry stays in flight; stop puts it back in the queue.
			s.Kill(fmt.Errorf("rabbit: publish: %w", err))
			<-stop
			return
		}
	}
}

// confirmLoop matches confirms and returns to in-flight messages. The broker sends
// basic.return before the basic.ack of the same message, and the client library
// hands both over in that order from one goroutine, so a return is always in
// returns before its confirm is in confirms.
func (p *Publisher) confirmLoop(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, stop <-chan struct{}) {
	defer p.wg.Done()
	drainReturns := func() {
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					return
				}
				p.markReturned(r)
			default:
				return
			}
		}
	}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.markReturned(r)
		case c, ok := <-confirms:
			if !ok {
				return
			}
			drainReturns()
			p.confirm(c)
		case <-stop:
			// The connection is closed: take what already arrived, leave the rest for resend.
			drainReturns()
			for {
				select {
				case c, ok := <-confirms:
					if !ok {
						return
					}
					drainReturns()
					p.confirm(c)
				default:
					return
				}
			}
		}
	}
}

func (p *Publisher) markReturned(r amqp.Return) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.byID[r.MessageId]; e != nil {
		e.returned = &r
	}
}

func (p *Publisher) confirm(c amqp.Confirmation) {
	p.mu.Lock()
	e := p.inflight[c.DeliveryTag]
	if e == nil {
		p.mu.Unlock()
		return
	}
	delete(p.inflight, c.DeliveryTag)
	delete(p.byID, e.id)
	var err error
	switch {
	case !c.Ack:
		err = ErrNacked
	case e.returned != nil:
		err = fmt.Errorf("%w: %d %s (exchange %q, key %q)", ErrReturned,
			e.returned.ReplyCode, e.returned.ReplyText, e.exchange, e.key)
	}
	cb := p.resolveLocked(e, err)
	sent := e.sent
	p.mu.Unlock()
	<-p.window
	if p.latency != nil {
		p.latency(time.Since(sent))
	}
	cb()
}

// sweep fails messages whose deadline passed: queued ones leave the queue and free
// their slot; in-flight ones keep their slot until the confirm or the connection
// loss, and are not sent again.
func (p *Publisher) sweep(now time.Time) {
	p.mu.Lock()
	var cbs []func()
	kept := p.queue[:0]
	freed := 0
	for _, e := range p.queue {
		if e.resolved || (!e.deadline.IsZero() && now.After(e.deadline)) {
			cbs = append(cbs, p.resolveLocked(e, ErrPublishTimeout))
			freed++
			continue
		}
		kept = append(kept, e)
	}
	clear(p.queue[len(kept):])
	p.queue = kept
	for _, e := range p.inflight {
		if !e.resolved && !e.deadline.IsZero() && now.After(e.deadline) {
			cbs = append(cbs, p.resolveLocked(e, ErrPublishTimeout))
		}
	}
	p.mu.Unlock()
	for range freed {
		<-p.window
	}
	for _, cb := range cbs {
		cb()
	}
}
