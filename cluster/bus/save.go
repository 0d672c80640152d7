package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// SaveHandler persists a batch of records and returns one Saved per record, in
// order (saver.Store.Save). It must be idempotent: a batch is redelivered after a
// crash or a lost connection.
type SaveHandler func(ctx context.Context, recs []message.Record) ([]message.Saved, error)

// SaveConsumer is the saver's side of the bus: it consumes the durable save queue
// in batches, persists each batch with the handler, publishes every Saved to the
// fanout exchange with confirms, and only then acknowledges the batch (one
// multiple ack). A batch whose handler fails is nacked with requeue after a
// backoff; a batch whose fan-out fails (broker down longer than PublishTimeout) is
// nacked with requeue at once, and its redelivery comes back from the idempotent
// store as duplicates. A Saved no node queue receives (no node is up) counts as
// delivered: it is in the store.
type SaveConsumer struct {
	cfg    Config
	r      *rabbit
	pub    *publisher
	handle SaveHandler
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	fails  atomic.Int32 // consecutive handler failures
}

// NewSaveConsumer starts consuming the save queue (SavePrefetch unacknowledged
// deliveries, batches of up to SaveBatch). It returns at once; Ready waits for the
// connection.
func NewSaveConsumer(cfg Config, handle SaveHandler) (*SaveConsumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if handle == nil {
		return nil, errors.New("bus: NewSaveConsumer needs a handler")
	}
	cfg = cfg.withDefaults()
	// The fan-out is persistent: the node queues are durable, so a message routed to a
	// node before a broker restart still reaches the devices that stay connected to it.
	c := &SaveConsumer{cfg: cfg, pub: newPublisher(cfg, true), handle: handle}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cons := &rabbitConsumer{
		queue:    cfg.SaveQueue,
		prefetch: cfg.SavePrefetch,
		batch:    cfg.SaveBatch,
		handle:   c.handleBatch,
		detached: true,
		wg:       &c.loops,
	}
	c.r = newRabbit(cfg, &rabbitTopology{cfg: cfg}, c.pub, cons)
	return c, nil
}

// State returns nil while the broker connection is up; see NodeBus.State.
func (c *SaveConsumer) State() error { return c.r.State() }

// Ready waits until State is nil or ctx ends.
func (c *SaveConsumer) Ready(ctx context.Context) error { return c.r.ready(ctx) }

// Close stops consuming, cancels the handler's context, waits for the batch in
// progress and closes the connection. Unacknowledged deliveries go back to the queue.
func (c *SaveConsumer) Close() error {
	c.cancel()
	c.r.close()
	c.loops.Wait()
	c.pub.failAll(ErrBusClosed)
	return nil
}

func (c *SaveConsumer) handleBatch(ch *amqp.Channel, batch []amqp.Delivery) {
	log := c.cfg.Logger
	last := batch[len(batch)-1].DeliveryTag
	recs := make([]message.Record, 0, len(batch))
	for _, d := range batch {
		r, err := wire.DecodeRecord(d.Body)
		if err != nil {
			log.Warn("bus: dropping undecodable record", "queue", c.cfg.SaveQueue, "err", err)
			continue
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		_ = ch.Ack(last, true)
		return
	}
	saved, err := c.handle(c.ctx, recs)
	if errors.Is(err, message.ErrInvalid) {
		// One record the store refuses must not block the queue: drop the invalid ones
		// (nodes validate before publishing, so this is an old or foreign publisher) and
		// save the rest.
		valid := recs[:0]
		for _, r := range recs {
			if verr := r.Validate(); verr != nil {
				log.Warn("bus: dropping a record the store refuses", "queue", c.cfg.SaveQueue, "err", verr)
				continue
			}
			valid = append(valid, r)
		}
		recs = valid
		if len(recs) == 0 {
			_ = ch.Ack(last, true)
			return
		}
		saved, err = c.handle(c.ctx, recs)
	}
	if err != nil && c.fails.Load() >= splitAfter && len(recs) > 1 {
		// The same failure again and again: maybe one record the store cannot take (a
		// poison message), maybe the store is down. Save the records one by one: if some
		// succeed, the store is up and the ones that fail are dropped (logged) so that
		// the queue moves on; if none succeeds, it is the store, and the batch waits.
		recs, saved, err = c.split(recs)
	}
	if err != nil {
		n := c.fails.Add(1)
		log.Warn("bus: save failed; requeueing the batch", "records", len(recs), "err", err)
		t := time.NewTimer(rabbitBackoff(int(n), c.cfg.ReconnectMin, c.cfg.ReconnectMax))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		_ = ch.Nack(last, true, true)
		return
	}
	c.fails.Store(0)
	if err := c.fanOut(saved); err != nil {
		log.Warn("bus: fan-out failed; requeueing the batch", "records", len(recs), "err", err)
		_ = ch.Nack(last, true, true)
		return
	}
	if err := ch.Ack(last, true); err != nil {
		log.Debug("bus: ack failed; the batch will be redelivered", "err", err)
	}
}

// splitAfter is how many failures in a row make the saver try a batch record by record.
const splitAfter = 3

// split saves recs one at a time. It returns the records that were saved and their Saved,
// in order, dropping (and logging) the ones that failed — unless every record failed, then
// it returns the last error and the batch is requeued whole.
func (c *SaveConsumer) split(recs []message.Record) ([]message.Record, []message.Saved, error) {
	var kept []message.Record
	var saved []message.Saved
	var lastErr error
	for _, r := range recs {
		out, err := c.handle(c.ctx, []message.Record{r})
		if err != nil || len(out) != 1 {
			lastErr = err
			continue
		}
		kept = append(kept, r)
		saved = append(saved, out[0])
	}
	if len(kept) == 0 {
		return recs, nil, lastErr
	}
	for _, r := range recs {
		if !slices.ContainsFunc(kept, func(k message.Record) bool { return k.Msg.MsgID == r.Msg.MsgID }) {
			c.cfg.Logger.Error("bus: dropping a record the store keeps refusing (its sender gets no ACK)",
				"msgId", r.Msg.MsgID, "sender", r.Msg.SenderID, "err", lastErr)
		}
	}
	return kept, saved, nil
}

// fanOut publishes every Saved to the fanout exchange and waits for all confirms.
func (c *SaveConsumer) fanOut(saved []message.Saved) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PublishTimeout)
	defer cancel()
	errs := make(chan error, len(saved))
	sent := 0
	var first error
	for _, s := range saved {
		body, err := wire.EncodeSaved(s)
		if err != nil {
			c.cfg.Logger.Warn("bus: cannot encode saved message", "msgId", s.Msg.MsgID, "err", err)
			continue
		}
		if _, err := c.pub.submit(ctx, c.cfg.Exchange, "", body, func(err error) { errs <- err }); err != nil {
			first = err
			break
		}
		sent++
	}
	for range sent {
		select {
		case err := <-errs:
			if err != nil && !errors.Is(err, ErrReturned) && first == nil {
				first = err
			}
		case <-ctx.Done():
			if first == nil {
				first = fmt.Errorf("bus: fan-out: %w", ctx.Err())
			}
			return first
		}
	}
	return first
}
