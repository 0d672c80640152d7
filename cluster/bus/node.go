package bus

import (
	"imgate/cluster/rabbit"

	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// NodeBus is a node's side of the RabbitMQ bus (cluster mode). It publishes the
// records the node accepts to the save queue in batches, and consumes the node's own
// queue, which receives the persisted messages of its users (routed by the saver on
// RouteExchange with the node's id) or of everyone (the fanout Exchange).
//
// Flow: Submit → batch → SaveExchange/SaveKey → SaveQueue → saver (persists batches) →
// RouteExchange/nodeID (or Exchange) → node queue → sink.Saved.
//
// A NodeBus is the node's Outbox (Submit) and Relay (Relay): it is built first, handed
// to the server, and given the server as its sink once with Start.
type NodeBus struct {
	cfg   Config
	queue string
	route string
	pub   *rabbit.Publisher

	sink    message.Sink                // set once by Start, before r is stored
	groups  GroupCache                  // set once by Start; nil: this bus caches no groups
	changes changes                     // group changes this bus announced (groups.go)
	answers chan struct{}               // group change answers being published (groups.go)
	records *accumulator                // set once by Start: accepted records → save queue
	live    *accumulator                // set once by Start: SIGNED receipts → every node
	waiting *unanswered                 // submitted records until their result comes back
	r       atomic.Pointer[rabbit.Conn] // nil until Start
	ready   chan struct{}               // closed by Start
	once    sync.Once

	connects    atomic.Int64  // broker connections made
	reconnected chan struct{} // cap 1: see Reconnected
	// owed: a catch-up is due once the node queue's backlog at the last reconnect is
	// consumed (catchUpDue; owed counts down the deliveries of that backlog).
	owedMu     sync.Mutex
	catchUpDue bool          // guarded by owedMu
	owed       int           // guarded by owedMu
	stop       chan struct{} // closed by Close: ends the answer-timeout sweep
	stopOnce   sync.Once
	swept      chan struct{} // closed when the sweep has returned (Start ran)
}

// NewNodeBus returns the bus of the node nodeID (its id in records, Record.Node) whose
// queue is nodeQueueName (see Config.NodeQueue). It makes no connection: Start does.
func NewNodeBus(cfg Config, nodeQueueName, nodeID string) (*NodeBus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nodeQueueName == "" || nodeID == "" {
		return nil, errors.New("bus: NewNodeBus needs a node queue name and a node id")
	}
	cfg = cfg.withDefaults()
	// Transient messages: a broker restart drops what its queues held, and the records
	// of the save hop are published again (waiting); see docs/architecture.md.
	return &NodeBus{cfg: cfg, queue: nodeQueueName, route: nodeID, pub: rabbit.NewPublisher(cfg.Config), ready: make(chan struct{}),
		changes: changes{pending: make(map[uint64]*change)}, answers: make(chan struct{}, maxAnswers),
		waiting: newUnanswered(cfg.Unanswered), reconnected: make(chan struct{}, 1),
		stop: make(chan struct{}), swept: make(chan struct{})}, nil
}

// Start connects the bus in the background (Ready waits for it, State reports it)
// and gives it the sink of the node and its group cache (nil for a bus that caches no
// groups, the server API's), once; a second call does nothing.
//
// The cache is told of every group change announced on the broker (ChangeGroups),
// before the change is answered, and is dropped whole on every (re)connect: changes
// made while the node was cut off wait in its queue, but its entries are not trusted
// until it reads them.
//
// Persisted messages go to sink.Saved from one goroutine, the records of up to
// NodeBatch AMQP messages at a time; Saved must not block (the node hands the batch
// to its event loops) and must not keep the slice. The deliveries are acknowledged
// after Saved returns. Records a batch refuses, and batches that do not decode, are
// logged and dropped (their messages are in the store; devices replay them). A record
// Submit accepted that the broker then does not confirm, or that has no answer within
// AnswerTimeout, goes to sink.Failed.
func (b *NodeBus) Start(sink message.Sink, groups GroupCache) {
	b.once.Do(func() {
		b.sink = sink
		b.groups = groups
		log := b.cfg.Logger
		limits := batchLimits{records: b.cfg.BatchRecords, bytes: b.cfg.BatchBytes, linger: b.cfg.BatchLinger, pending: b.cfg.BatchPending}
		busy := func() bool { return b.pub.Pending() > 0 }
		b.records = newAccumulator(wire.Records, limits, func(ctx context.Context, body []byte, done func(error)) error {
			err := b.pub.Submit(ctx, b.cfg.SaveExchange, b.cfg.SaveKey, body, done)
			return err
		}, busy, func(recs []message.Record, err error) {
			if err == nil {
				b.waiting.confirmed(recs)
				return
			}
			b.waiting.forget(recs)
			sink.Failed(recs, err)
		})
		// A receipt that is not confirmed is dropped: it is live-only, its sender is not told.
		b.live = newAccumulator(wire.Live, limits, func(ctx context.Context, body []byte, done func(error)) error {
			err := b.pub.Submit(ctx, b.cfg.Exchange, "", body, done)
			return err
		}, busy, func([]message.Record, error) {})
		go b.sweep(sink)
		saved := make([]message.Saved, 0, b.cfg.NodeBatch)
		var answered []waitKey
		cons := &rabbit.Consumer{
			Queue:    b.queue,
			Prefetch: b.cfg.NodePrefetch,
			Batch:    b.cfg.NodeBatch,
			Handle: func(ch *amqp.Channel, batch []amqp.Delivery) {
				saved, answered = saved[:0], answered[:0]
				for _, d := range batch {
					if k := wire.KindOf(d.Body); k == wire.GroupsChanged || k == wire.ChangeApplied {
						b.handleChange(d.Body)
						continue
					}
					kind, recs, refused, err := wire.Decode(d.Body)
					if err != nil || len(refused) > 0 {
						log.Warn("bus: dropping what a batch refuses", "queue", b.queue, "records", len(recs), "refused", len(refused), "err", errors.Join(append(refused, err)...))
					}
					if kind == wire.Saved {
						for i := range recs {
							if recs[i].Node == b.route {
								answered = append(answered, keyOf(&recs[i].Msg))
							}
						}
					}
					saved = append(saved, recs...)
				}
				b.waiting.answered(answered)
				if len(saved) > 0 {
					sink.Saved(saved)
				}
				b.consumed(len(batch))
				clear(saved)
				if err := ch.Ack(batch[len(batch)-1].DeliveryTag, true); err != nil {
					log.Debug("bus: ack failed; the broker will redeliver", "err", err)
				}
			},
		}
		b.r.Store(rabbit.New(b.cfg.Config, &rabbitTopology{cfg: b.cfg, nodeQueue: b.queue, nodeRoute: b.route, onConnect: b.connected}, b.pub, cons))
		close(b.ready)
	})
}

// connected runs on each new broker connection, once the node queue is declared (it
// held backlog messages) and before anything is consumed. It drops the node's whole
// group cache (changes may have been missed) and publishes again every record the
// broker had confirmed and not yet answered (a restarted broker lost them; one that
// stayed up answers twice, and the saver deduplicates). From the second connection on,
// a catch-up is due once the backlog is consumed: what a restarted broker dropped is
// then missing for good, while what a connection blip left in the queue has been
// delivered (catching up before would repair every user with a message still queued).
func (b *NodeBus) connected(backlog int) {
	if b.groups != nil {
		b.groups.InvalidateGroups(nil)
	}
	if again := b.waiting.takeConfirmed(); len(again) > 0 {
		b.cfg.Logger.Info("bus: publishing again the records that have no answer yet", "records", len(again))
		var failed []message.Record
		var ferr error
		for _, r := range again {
			if err := b.records.add(r); err != nil {
				failed, ferr = append(failed, r), err
			}
		}
		if len(failed) > 0 {
			b.waiting.forget(failed)
			b.sink.Failed(failed, ferr)
		}
	}
	if b.connects.Add(1) == 1 {
		return
	}
	b.owedMu.Lock()
	b.catchUpDue, b.owed = true, backlog
	b.owedMu.Unlock()
	b.consumed(0)
}

// consumed counts n deliveries of the node queue against the backlog a due catch-up
// waits for, and signals Reconnected once it is consumed.
func (b *NodeBus) consumed(n int) {
	b.owedMu.Lock()
	b.owed -= n
	due := b.catchUpDue && b.owed <= 0
	if due {
		b.catchUpDue = false
	}
	b.owedMu.Unlock()
	if due {
		select {
		case b.reconnected <- struct{}{}:
		default:
		}
	}
}

// Unanswered returns how many submitted records wait for their result.
func (b *NodeBus) Unanswered() int { return b.waiting.len() }

// Reconnected receives a value after each broker connection but the first, once the
// node queue's messages at the reconnect are consumed (values coalesce). Messages are
// transient, so a broker restart may have dropped persisted messages on their way to
// this node: the node then catches its bound users up from the store
// (server.Server.CatchUp).
func (b *NodeBus) Reconnected() <-chan struct{} { return b.reconnected }

// sweep fails, once a second, the records whose result has not come back within
// Config.AnswerTimeout (no saver ran meanwhile, or one dropped them): their senders get
// ERROR unavailable and resend with their clientMsgId. It returns when Close stops it.
func (b *NodeBus) sweep(sink message.Sink) {
	defer close(b.swept)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			if late := b.waiting.expire(now, b.cfg.AnswerTimeout); len(late) > 0 {
				sink.Failed(late, errNoAnswer)
			}
		}
	}
}

// Submit queues r for the next batch to the save queue without blocking; it is the
// node's Outbox and is called on event loops. It returns an error wrapping
// rabbit.ErrUnavailable before Start and while the broker is down, and rabbit.ErrFull when
// BatchPending records already wait for their batch or Unanswered records for their
// result; the node answers ERROR unavailable to both. A record accepted here that the
// broker does not confirm into the save queue (rabbit.ErrReturned, rabbit.ErrNacked: the
// save queue is full, rabbit.ErrPublishTimeout, rabbit.ErrClosed), or whose result does not
// come back within AnswerTimeout, is reported through the sink's Failed; the sender then
// gets ERROR unavailable and resends with its clientMsgId. Until its result comes back the
// record is kept, and published again on the next broker connection (the save queue's
// messages are transient).
func (b *NodeBus) Submit(r message.Record) error {
	if err := b.State(); err != nil {
		return err
	}
	if err := b.waiting.add(r, time.Now()); err != nil { // monotonic: a clock step neither expires nor keeps records
		return err
	}
	if err := b.records.add(r); err != nil {
		b.waiting.forget([]message.Record{r})
		return err
	}
	return nil
}

// Relay queues r for the fanout exchange, without the store: for messages that are
// pushed but not persisted (SIGNED receipts). It is the node's Relay, called on event
// loops; same bounds and errors as Submit. A receipt that is not confirmed is
// dropped: the receipt is live-only, its sender is not told.
func (b *NodeBus) Relay(r message.Record) error {
	if err := b.State(); err != nil {
		return err
	}
	return b.live.add(r)
}

// State returns nil while the broker connection is up and the topology and
// consumer are in place; otherwise an error wrapping rabbit.ErrUnavailable (rabbit.ErrClosed
// after Close). /healthz reports it; Submit refuses records while it is not nil.
func (b *NodeBus) State() error {
	r := b.r.Load()
	if r == nil {
		return fmt.Errorf("%w: not started", rabbit.ErrUnavailable)
	}
	return r.State()
}

// Ready waits until Start was called and State is nil, or ctx ends.
func (b *NodeBus) Ready(ctx context.Context) error {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return fmt.Errorf("%w: not started (%w)", rabbit.ErrUnavailable, ctx.Err())
	}
	r := b.r.Load()
	if r == nil {
		return rabbit.ErrClosed // closed before it was started
	}
	return r.Ready(ctx)
}

// Close stops accepting records, waits up to CloseTimeout for unconfirmed ones,
// fails the rest with rabbit.ErrClosed, and closes the connection. Deliveries not yet
// acknowledged stay in the node queue.
func (b *NodeBus) Close() error {
	b.once.Do(func() { close(b.ready); close(b.swept) }) // never started: nothing connects or sweeps
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.swept
	if b.records != nil {
		b.records.close(b.cfg.CloseTimeout)
		b.live.close(b.cfg.CloseTimeout)
	}
	b.pub.Drain(b.cfg.CloseTimeout)
	if r := b.r.Load(); r != nil {
		r.Close()
	}
	b.pub.FailAll(rabbit.ErrClosed)
	return nil
}
