package bus

import (
	"imgate/cluster/rabbit"

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
//
// locked lets the saver overlap transactions: the handler calls it once its transaction
// holds the locks that order its seqs (or when it returns); the saver starts the next
// batch's handler only then, so that batches publish in the order of their seqs.
// saver.Postgres.SaveOrdered is one.
type SaveHandler func(ctx context.Context, recs []message.Record, locked func()) ([]message.Saved, error)

// Router tells which nodes hold a device of users, for routed delivery: for each user
// with a device somewhere, the ids of those nodes (Record.Node, the key their queues
// are bound with on RouteExchange). An error means "not sure": that batch goes to
// every node through the fanout exchange. presence.Routes implements it.
type Router interface {
	Lookup(ctx context.Context, users []string) (map[string][]string, error)
}

// OfflineHook hears of persisted messages whose receiver had no connected device
// anywhere (presence named no node for it): the offline webhook. Enqueue is called on a
// commit goroutine after the batch's publishes were submitted; it must not block, and
// it may not keep batch.
type OfflineHook interface {
	Enqueue(batch []message.Offline)
}

// SaveConsumer is the saver's side of the bus: it consumes the durable save queue
// (each delivery a node's batch of records), commits the records of up to SaveBatch
// deliveries in one transaction with the handler, publishes the persisted records —
// routed: one AMQP message per node that holds a device of one of their users or
// accepted one of them; fanout: one message to every node — and acknowledges the
// deliveries once the broker confirmed every one of those publishes. Up to
// SavePipeline committed batches wait for their confirms while the next one commits;
// acknowledgements follow commit order.
//
// A batch whose handler fails is nacked with requeue after a backoff; a batch whose
// fan-out fails (broker down longer than PublishTimeout) is nacked with requeue, and
// its redelivery comes back from the idempotent store with the same seqs. A publish no
// node queue receives (the node is gone) counts as delivered: it is in the store.
type SaveConsumer struct {
	cfg     Config
	r       *rabbit.Conn
	pub     *rabbit.Publisher
	handle  SaveHandler
	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	fails   atomic.Int32 // consecutive handler failures
	router  Router       // nil: every batch to the fanout exchange
	offline OfflineHook  // nil: none (route checks it in one place)

	pipe      chan *fanout // committed batches in commit order, waiting for confirms
	ackDone   chan struct{}
	slots     chan struct{} // one token per transaction in progress (SaveCommits)
	closeOnce sync.Once
	prevMu    sync.Mutex     // guards prevLocked and prevDone
	commits   sync.WaitGroup // commit goroutines
	// The batch taken last: its locks are held (prevLocked) and it was handed to pipe
	// (prevDone). Only the consumer loop reads and writes them.
	prevLocked, prevDone <-chan struct{}
	stats                busStats
	depth                depthProbe // SaveQueueDepth (depth.go)
}

// busStats counts what the saver published, for operators and figures: AMQP messages
// per chat message is the broker's cost.
type busStats struct {
	consumed atomic.Int64 // AMQP messages taken from the save queue (nodes' batches)
	records  atomic.Int64 // persisted records
	messages atomic.Int64 // AMQP messages published to nodes
	routed   atomic.Int64 // node deliveries of records (a record to two nodes counts two)
	fanouts  atomic.Int64 // batches sent to every node (fanout mode or presence unsure)
	unsure   atomic.Int64 // records the offline hook did not hear of: presence unsure
}

// SaveStats is a snapshot of what a SaveConsumer published.
type SaveStats struct {
	// Consumed is the number of AMQP messages taken from the save queue (the nodes'
	// batches); Records the persisted records; Messages the AMQP messages that carried
	// them to nodes; NodeRecords the records as published to nodes (routed: a record
	// to two nodes counts twice; fanout: once, and the broker copies it to every node
	// queue); Fanouts the batches published to every node.
	Consumed, Records, Messages, NodeRecords, Fanouts int64
	// OfflineUnsure counts the records of batches whose presence could not be read
	// while an offline hook is set: nobody knew who was offline, so the hook heard
	// nothing of them (their recipients still get them on their next connect).
	OfflineUnsure int64
}

// Stats returns the counts since the consumer started.
func (c *SaveConsumer) Stats() SaveStats {
	return SaveStats{Consumed: c.stats.consumed.Load(), Records: c.stats.records.Load(), Messages: c.stats.messages.Load(),
		NodeRecords: c.stats.routed.Load(), Fanouts: c.stats.fanouts.Load(), OfflineUnsure: c.stats.unsure.Load()}
}

// fanout is one committed batch waiting for its publishes' confirms.
type fanout struct {
	ch        *amqp.Channel // the channel its deliveries came on (tags are per channel)
	last      uint64        // its last delivery tag
	nack      bool          // requeue instead of ack (the commit failed)
	remaining atomic.Int32
	failed    atomic.Pointer[error]
	done      chan struct{} // closed when remaining reaches 0
}

func (f *fanout) finish(err error) {
	if err != nil && !errors.Is(err, rabbit.ErrReturned) {
		f.failed.CompareAndSwap(nil, &err)
	}
	if f.remaining.Add(-1) == 0 {
		close(f.done)
	}
}

// NewSaveConsumer starts consuming the save queue (SavePrefetch unacknowledged
// deliveries, batches of up to SaveBatch). It returns at once; Ready waits for the
// connection.
//
// router nil delivers every batch to every node (--delivery fanout). offline, when not
// nil, hears of every persisted content message whose receiver presence shows on no
// node (message.NotifiesOffline); it needs a router, since only presence tells.
func NewSaveConsumer(cfg Config, handle SaveHandler, router Router, offline OfflineHook) (*SaveConsumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if handle == nil {
		return nil, errors.New("bus: NewSaveConsumer needs a handler")
	}
	if offline != nil && router == nil {
		return nil, errors.New("bus: an offline hook needs a router (routed delivery): only presence tells who is offline")
	}
	cfg = cfg.withDefaults()
	// The fan-out is transient: the store is the truth. A broker restart drops what the
	// node queues held; each node then catches its bound users up from the store
	// (NodeBus.Reconnected) and publishes its unanswered records again.
	c := &SaveConsumer{cfg: cfg, pub: rabbit.NewPublisher(cfg.Config), handle: handle, router: router, offline: offline,
		pipe: make(chan *fanout, cfg.SavePipeline), ackDone: make(chan struct{}),
		slots: make(chan struct{}, cfg.SaveCommits)}
	closed := make(chan struct{})
	close(closed)
	c.prevLocked, c.prevDone = closed, closed
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.ackLoop()
	cons := &rabbit.Consumer{
		Queue:      cfg.SaveQueue,
		Prefetch:   cfg.SavePrefetch,
		Batch:      cfg.SaveBatch,
		BatchBytes: cfg.SaveBatchBytes,
		Handle:     c.handleBatch,
		Gate:       c.acquire,
		Detached:   true,
		WG:         &c.loops,
	}
	c.r = rabbit.New(cfg.Config, &rabbitTopology{cfg: cfg, saver: true}, c.pub, cons, &c.depth)
	return c, nil
}

// State returns nil while the broker connection is up; see NodeBus.State.
func (c *SaveConsumer) State() error { return c.r.State() }

// Ready waits until State is nil or ctx ends.
func (c *SaveConsumer) Ready(ctx context.Context) error { return c.r.Ready(ctx) }

// Close stops consuming, cancels the handler's context, waits for the batch in
// progress and closes the connection. Unacknowledged deliveries go back to the queue.
// A second Close does nothing.
func (c *SaveConsumer) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.r.Close()
		c.loops.Wait()
		c.commits.Wait()
		close(c.pipe)
		<-c.ackDone
		c.pub.FailAll(rabbit.ErrClosed)
	})
	return nil
}

func (c *SaveConsumer) handleBatch(ch *amqp.Channel, batch []amqp.Delivery) {
	log := c.cfg.Logger
	last := batch[len(batch)-1].DeliveryTag
	c.stats.consumed.Add(int64(len(batch)))
	recs := make([]message.Record, 0, len(batch)*8)
	now := time.Now()
	for _, d := range batch {
		_, saved, refused, err := wire.Decode(d.Body)
		if err != nil || len(refused) > 0 {
			log.Warn("bus: dropping records a batch refuses", "queue", c.cfg.SaveQueue,
				"kept", len(saved), "refused", len(refused), "err", errors.Join(append(refused, err)...))
		}
		for i := range saved {
			recs = append(recs, saved[i].Record)
			if c.cfg.ReceiveAge != nil {
				c.cfg.ReceiveAge(now.Sub(saved[i].Msg.ChatTime))
			}
		}
	}
	// Up to SaveCommits transactions overlap: the next batch's starts once this one holds
	// its locks (so seqs follow the order batches were taken), and fan-outs and acks
	// follow that order too.
	locked, done := make(chan struct{}), make(chan struct{})
	c.prevMu.Lock() // a consumer loop of a session that ended may still hand over a batch
	prevLocked, prevDone := c.prevLocked, c.prevDone
	c.prevLocked, c.prevDone = locked, done
	c.prevMu.Unlock()
	// The consumer's Gate (acquire) took a slot for this batch.
	c.commits.Add(1)
	go func() {
		defer c.commits.Done()
		defer close(done)
		lockedOnce := sync.OnceFunc(func() { close(locked) })
		defer lockedOnce()
		select {
		case <-prevLocked:
		case <-c.ctx.Done():
			return // closing: the deliveries go back to the queue
		}
		saved, err := c.save(recs, lockedOnce)
		if err != nil {
			c.stepDown(ch, err)
		}
		<-c.slots
		select {
		case <-prevDone:
		case <-c.ctx.Done():
			return
		}
		switch {
		case err != nil:
			c.enqueue(&fanout{ch: ch, last: last, nack: true})
		case len(saved) == 0:
			c.enqueue(&fanout{ch: ch, last: last})
		default:
			c.stats.records.Add(int64(len(saved)))
			f := &fanout{ch: ch, last: last, done: make(chan struct{})}
			c.publish(f, saved)
			c.enqueue(f)
		}
	}()
}

// acquire waits for a free transaction slot (SaveCommits), the consumer's Gate: the next
// batch is taken only then, so it holds everything that arrived while the transactions
// before it ran. It returns false once the consumer is closing.
func (c *SaveConsumer) acquire() bool {
	select {
	case c.slots <- struct{}{}:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// save commits recs with the handler. A record the store refuses is dropped (logged)
// and the rest saved; after splitAfter failures in a row the batch is tried record by
// record; a failure waits a backoff and is returned (the batch is then requeued).
func (c *SaveConsumer) save(recs []message.Record, locked func()) ([]message.Saved, error) {
	log := c.cfg.Logger
	if len(recs) == 0 {
		return nil, nil
	}
	saved, err := c.handleOnce(recs, locked)
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
			return nil, nil
		}
		saved, err = c.handleOnce(recs, locked)
	}
	if err != nil && c.fails.Load() >= splitAfter && len(recs) > 1 {
		// The same failure again and again: maybe one record the store cannot take (a
		// poison message), maybe the store is down. Save the records one by one: if some
		// succeed, the store is up and the ones that fail are dropped (logged) so that
		// the queue moves on; if none succeeds, it is the store, and the batch waits.
		recs, saved, err = c.split(recs, locked)
	}
	if err != nil {
		n := c.fails.Add(1)
		log.Warn("bus: save failed; requeueing the batch", "records", len(recs), "err", err)
		t := time.NewTimer(rabbit.Backoff(int(n), c.cfg.ReconnectMin, c.cfg.ReconnectMax))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		return nil, err
	}
	c.fails.Store(0)
	return saved, nil
}

// enqueue hands f to the acknowledger, in commit order; it blocks while SavePipeline
// batches wait for their confirms (the saver's backpressure).
func (c *SaveConsumer) enqueue(f *fanout) {
	if f.done == nil {
		f.done = make(chan struct{})
		close(f.done)
	}
	select {
	case c.pipe <- f:
	case <-c.ctx.Done():
		// Closing: the deliveries are not acknowledged and go back to the queue.
	}
}

// ackLoop acknowledges committed batches in commit order once their publishes are
// confirmed: a batch whose fan-out failed or timed out is requeued instead. Ack and
// nack cover every delivery up to the batch's last tag, which are exactly its own:
// the earlier ones were settled before it.
func (c *SaveConsumer) ackLoop() {
	defer close(c.ackDone)
	for f := range c.pipe {
		t := time.NewTimer(c.cfg.PublishTimeout)
		var err error
		select {
		case <-f.done:
			if p := f.failed.Load(); p != nil {
				err = *p
			}
		case <-t.C:
			err = fmt.Errorf("bus: fan-out: %w", rabbit.ErrPublishTimeout)
		case <-c.ctx.Done():
			err = rabbit.ErrClosed
		}
		t.Stop()
		switch {
		case f.nack:
			_ = f.ch.Nack(f.last, true, true)
		case err != nil:
			if !errors.Is(err, rabbit.ErrClosed) {
				c.cfg.Logger.Warn("bus: fan-out failed; requeueing the batch", "err", err)
			}
			_ = f.ch.Nack(f.last, true, true)
		default:
			if err := f.ch.Ack(f.last, true); err != nil {
				c.cfg.Logger.Debug("bus: ack failed; the batch will be redelivered", "err", err)
			}
		}
	}
}

// splitAfter is how many failures in a row make the saver try a batch record by record.
const splitAfter = 3

// stepDownAfter is how many failures in a row make the active saver give up its place:
// by then splitting showed it is the store, not one record, that fails. A handler call
// that timed out steps down at once.
const stepDownAfter = splitAfter + 2

// handleOnce is one handler call within SaveTimeout.
func (c *SaveConsumer) handleOnce(recs []message.Record, locked func()) ([]message.Saved, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SaveTimeout)
	defer cancel()
	return c.handle(ctx, recs, locked)
}

// stepDown closes the consumer's channel when this saver cannot reach its store (err
// timed out, or failures reached stepDownAfter): the save queue has a single active
// consumer, so the broker hands the unacknowledged batches and the queue to a standby
// saver, which may reach the store; this one consumes again, as a standby, after the
// reconnect. With no other saver it simply becomes active again and retries.
func (c *SaveConsumer) stepDown(ch *amqp.Channel, err error) {
	if c.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) && c.fails.Load() < stepDownAfter {
		return
	}
	c.cfg.Logger.Warn("bus: the store keeps failing; stepping down so that a standby saver takes over",
		"queue", c.cfg.SaveQueue, "failures", c.fails.Load(), "err", err)
	c.fails.Store(0)
	_ = ch.Close()
}

// split saves recs one at a time. It returns the records that were saved and their Saved,
// in order, dropping (and logging) the ones that failed — unless every record failed, then
// it returns the last error and the batch is requeued whole.
func (c *SaveConsumer) split(recs []message.Record, locked func()) ([]message.Record, []message.Saved, error) {
	var kept []message.Record
	var saved []message.Saved
	var lastErr error
	for _, r := range recs {
		out, err := c.handleOnce([]message.Record{r}, locked)
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

// publish sends the persisted records to the nodes: routed, one message per node that
// holds a device of one of their users or accepted one of them (it sends the ACK);
// fanout (no router, or presence not sure), one message to every node. Each publish
// reports to f. Publishes are made in commit order on one channel, so every node
// queue receives a user's seqs in order.
func (c *SaveConsumer) publish(f *fanout, saved []message.Saved) {
	type out struct {
		exchange, key string
		body          []byte
		n             int
	}
	var outs []out
	dests, offline, ok := c.route(saved)
	if ok {
		for node, recs := range dests {
			outs = append(outs, out{c.cfg.RouteExchange, node, wire.Encode(wire.Saved, recs), len(recs)})
		}
	} else {
		c.stats.fanouts.Add(1)
		outs = append(outs, out{c.cfg.Exchange, "", wire.Encode(wire.Saved, saved), len(saved)})
	}
	f.remaining.Store(int32(len(outs)) + 1) // +1: held until every publish is submitted
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PublishTimeout)
	defer cancel()
	for _, o := range outs {
		if err := c.pub.Submit(ctx, o.exchange, o.key, o.body, f.finish); err != nil {
			f.finish(err)
			continue
		}
		c.stats.messages.Add(1)
		c.stats.routed.Add(int64(o.n))
	}
	f.finish(nil)
	if len(offline) > 0 {
		c.offline.Enqueue(offline)
	}
}

// route groups saved by destination node, in order: each node gets the records one of
// its devices receives or whose sender it serves (it sends the ACK, or the ERROR of a
// forbidden group message); a group message goes to a node once, with only the members
// that have a device there (message.Saved.Members). With an offline hook it also lists
// the recipients presence shows on no node. It reports false when the batch must go to
// every node: no router, or presence not sure.
func (c *SaveConsumer) route(saved []message.Saved) (map[string][]message.Saved, []message.Offline, bool) {
	if c.router == nil {
		return nil, nil, false
	}
	users := recipientUsers(saved)
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	routes, err := c.router.Lookup(ctx, users)
	if err != nil {
		c.cfg.Logger.Debug("bus: presence not sure; this batch goes to every node", "err", err)
		if c.offline != nil {
			c.stats.unsure.Add(int64(len(saved)))
		}
		return nil, nil, false
	}
	// Here every persisted record's recipients (forRecipients) and the nodes holding
	// their devices (routes; a recipient absent from it has no connected device) are
	// known.
	var offline []message.Offline
	if c.offline != nil {
		offline = offlineOf(saved, routes)
	}
	return byNode(saved, routes), offline, true
}
