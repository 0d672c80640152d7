package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// NodeBus is a node's side of the RabbitMQ bus (cluster mode). It publishes the
// records the node accepts to the save queue, and consumes the node's own queue,
// which receives every persisted message from the fanout exchange.
//
// Flow: Submit → SaveExchange/SaveKey → SaveQueue → saver (persists a batch) →
// Exchange (fanout) → every node queue → sink.Saved.
//
// A NodeBus is the node's Outbox (Submit) and Relay (Relay): it is built first, handed
// to the server, and given the server as its sink once with Start.
type NodeBus struct {
	cfg   Config
	queue string
	pub   *publisher

	sink  message.Sink           // set once by Start, before r is stored
	r     atomic.Pointer[rabbit] // nil until Start
	ready chan struct{}          // closed by Start
	once  sync.Once
}

// NewNodeBus returns the bus of a node whose queue is nodeQueueName (see
// Config.NodeQueue). It makes no connection: Start does.
func NewNodeBus(cfg Config, nodeQueueName string) (*NodeBus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nodeQueueName == "" {
		return nil, errors.New("bus: NewNodeBus needs a node queue name")
	}
	cfg = cfg.withDefaults()
	return &NodeBus{cfg: cfg, queue: nodeQueueName, pub: newPublisher(cfg, true), ready: make(chan struct{})}, nil
}

// Start connects the bus in the background (Ready waits for it, State reports it)
// and gives it the sink of the node, once; a second call does nothing.
//
// Persisted messages go to sink.Saved from one goroutine, at most NodeBatch at a
// time, whatever arrived without waiting when the queue is idle; Saved must not
// block (the node hands the batch to its event loops) and must not keep the slice.
// The batch's deliveries are acknowledged after Saved returns. Undecodable messages
// are logged and dropped. A record Submit accepted that the broker then does not
// confirm goes to sink.Failed.
func (b *NodeBus) Start(sink message.Sink) {
	b.once.Do(func() {
		b.sink = sink
		log := b.cfg.Logger
		saved := make([]message.Saved, 0, b.cfg.NodeBatch)
		cons := &rabbitConsumer{
			queue:    b.queue,
			prefetch: b.cfg.NodePrefetch,
			batch:    b.cfg.NodeBatch,
			handle: func(ch *amqp.Channel, batch []amqp.Delivery) {
				saved = saved[:0]
				for _, d := range batch {
					s, err := wire.DecodeSaved(d.Body)
					if err != nil {
						log.Warn("bus: dropping undecodable message", "queue", b.queue, "err", err)
						continue
					}
					saved = append(saved, s)
				}
				if len(saved) > 0 {
					sink.Saved(saved)
				}
				clear(saved)
				if err := ch.Ack(batch[len(batch)-1].DeliveryTag, true); err != nil {
					log.Debug("bus: ack failed; the broker will redeliver", "err", err)
				}
			},
		}
		b.r.Store(newRabbit(b.cfg, &rabbitTopology{cfg: b.cfg, nodeQueue: b.queue}, b.pub, cons))
		close(b.ready)
	})
}

// Submit queues r for the save queue without blocking; it is the node's Outbox and
// is called on event loops. It returns an error wrapping ErrUnavailable before Start
// and while the broker is down, and ErrFull when ConfirmWindow records are already
// waiting for their confirm; the node answers ERROR unavailable to both. A record
// accepted here that the broker does not confirm into the durable save queue
// (ErrReturned, ErrNacked: the save queue is full, ErrPublishTimeout, ErrBusClosed)
// is reported through the sink's Failed; the sender then gets ERROR unavailable and
// resends with its clientMsgId.
func (b *NodeBus) Submit(r message.Record) error {
	return b.submit(r, func(err error) {
		if err != nil {
			b.sink.Failed([]message.Record{r}, err)
		}
	})
}

// submit is Submit with the record's fate reported to done (if not nil), once, from
// another goroutine: nil when the broker confirmed it, else the failure. done is not
// called when submit returns an error.
func (b *NodeBus) submit(r message.Record, done func(error)) error {
	if err := b.State(); err != nil {
		return err
	}
	body, err := wire.EncodeRecord(r)
	if err != nil {
		return err
	}
	return b.pub.publishAsync(b.cfg.SaveExchange, b.cfg.SaveKey, body, done)
}

// Relay publishes r straight to the fanout exchange, without the store: for
// messages that are pushed but not persisted (SIGNED receipts). It is the node's
// Relay, called on event loops; same bounds and errors as Submit. A receipt that is
// not confirmed is dropped: the receipt is live-only, its sender is not told.
func (b *NodeBus) Relay(r message.Record) error {
	if err := b.State(); err != nil {
		return err
	}
	body, err := wire.EncodeSaved(message.Saved{Record: r})
	if err != nil {
		return err
	}
	return b.pub.publishAsync(b.cfg.Exchange, "", body, nil)
}

// State returns nil while the broker connection is up and the topology and
// consumer are in place; otherwise an error wrapping ErrUnavailable (ErrBusClosed
// after Close). /healthz reports it; Submit refuses records while it is not nil.
func (b *NodeBus) State() error {
	r := b.r.Load()
	if r == nil {
		return fmt.Errorf("%w: not started", ErrUnavailable)
	}
	return r.State()
}

// Ready waits until Start was called and State is nil, or ctx ends.
func (b *NodeBus) Ready(ctx context.Context) error {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return fmt.Errorf("%w: not started (%w)", ErrUnavailable, ctx.Err())
	}
	r := b.r.Load()
	if r == nil {
		return ErrBusClosed // closed before it was started
	}
	return r.ready(ctx)
}

// Close stops accepting records, waits up to CloseTimeout for unconfirmed ones,
// fails the rest with ErrBusClosed, and closes the connection. Deliveries not yet
// acknowledged stay in the node queue.
func (b *NodeBus) Close() error {
	b.once.Do(func() { close(b.ready) }) // never started: nothing connects any more
	b.pub.drain(b.cfg.CloseTimeout)
	if r := b.r.Load(); r != nil {
		r.close()
	}
	b.pub.failAll(ErrBusClosed)
	return nil
}
