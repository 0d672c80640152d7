package bus

import (
	"imgate/cluster/rabbit"

	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitTopology declares the exchanges and queues on every new connection (the
// declarations are idempotent, and a broker restart loses non-durable ones):
//
//   - SaveExchange: direct, durable. Nodes publish records to it with SaveKey.
//   - SaveQueue: durable, not exclusive, not auto-delete, bound with SaveKey, with
//     x-max-length SaveQueueMaxLen and x-overflow reject-publish so a saver that
//     falls behind pushes back on the nodes (nacks) instead of filling the disk, and
//     with x-single-active-consumer: one saver consumes at a time and the others stand
//     by; when the active one's connection goes (killed, stopped, cut off) the broker
//     hands its unacknowledged batches and the queue to the next at once. Savers
//     consuming side by side made one user's seqs reach nodes out of order (two
//     transactions interleave) and wait for each other's inbox-head locks: measured,
//     two competing savers gave 0.7x the throughput of one and held frames at the
//     nodes' gap checks. A queue left by an earlier version without the argument is
//     replaced by a saver when it is empty and unused, else used as it is (see
//     declareSaveQueue).
//     Nodes declare it too, so records published before any saver started wait in it
//     instead of being returned unroutable.
//   - RouteExchange: direct, durable. The saver publishes each persisted batch to the
//     nodes holding a device of its users, keyed by node id (routed delivery).
//   - Exchange: fanout, durable. The saver publishes persisted messages to it with
//     --delivery fanout (or when presence cannot be read); nodes relay SIGNED receipts on it.
//   - the node queue (nodes only): durable, not exclusive, not auto-delete,
//     bound to Exchange and to RouteExchange with the node's id, with x-expires NodeQueueExpires and x-max-length
//     NodeQueueMaxLen (overflow drop-head). It survives a dropped connection, so
//     pushes fanned out during a short outage are delivered after the reconnect; it
//     is deleted by the broker once no consumer used it for NodeQueueExpires, so a
//     dead node's queue stops collecting the fanout. It is durable so that it and its
//     binding survive a broker restart: a non-durable one was gone until the node
//     reconnected and declared it again, and whatever the saver fanned out before
//     that was unroutable (cmd/imgate TestClusterBrokerRestart). The messages in it are
//     transient: what it held when the broker restarted, the node catches up from the
//     store (NodeBus.Reconnected, TestClusterBrokerRestartCatchesUpDroppedDeliveries).
type rabbitTopology struct {
	cfg       Config
	saver     bool   // a saver's: it may replace an empty, unused legacy save queue
	nodeQueue string // "" when the user is not a node
	nodeRoute string // the node's key on RouteExchange (its id, Record.Node)
	// onConnect, nil or called on each new connection once the node queue is declared
	// and before anything is consumed, gets the messages that queue held then (ready, not
	// counting the deliveries of a lost connection the broker has not returned yet).
	onConnect func(backlog int)
}

func (t *rabbitTopology) Start(s *rabbit.Session) error {
	ch, err := s.Conn().Channel()
	if err != nil {
		return fmt.Errorf("bus: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	c := t.cfg
	if err := ch.ExchangeDeclare(c.SaveExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("bus: declare exchange %q: %w", c.SaveExchange, err)
	}
	if err := ch.ExchangeDeclare(c.RouteExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("bus: declare exchange %q: %w", c.RouteExchange, err)
	}
	if err := ch.ExchangeDeclare(c.Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("bus: declare exchange %q: %w", c.Exchange, err)
	}
	if err := t.declareSaveQueue(s.Conn(), &ch); err != nil {
		return err
	}
	if err := ch.QueueBind(c.SaveQueue, c.SaveKey, c.SaveExchange, false, nil); err != nil {
		return fmt.Errorf("bus: bind queue %q: %w", c.SaveQueue, err)
	}
	if t.nodeQueue == "" {
		return nil
	}
	backlog, err := t.declareNodeQueue(s.Conn(), ch)
	if err != nil {
		return err
	}
	if t.onConnect != nil {
		t.onConnect(backlog)
	}
	return nil
}

// declareSaveQueue declares the save queue on *ch. A queue of that name with other
// arguments (an earlier version's, without single-active-consumer) is replaced only by a
// saver, and only while it is empty and no one consumes it (an earlier saver holding
// unacknowledged batches makes it used, not empty); otherwise the queue is used as it is
// (a node publishes to it whatever its arguments; savers then compete on it, as earlier
// versions did) and a warning says how to recreate it. A failed declare or delete closes
// the channel, so *ch is replaced with a new one, which the caller closes.
func (t *rabbitTopology) declareSaveQueue(conn *amqp.Connection, ch **amqp.Channel) error {
	c := t.cfg
	args := amqp.Table{"x-single-active-consumer": true}
	if c.SaveQueueMaxLen > 0 {
		args["x-max-length"] = int64(c.SaveQueueMaxLen)
		args["x-overflow"] = "reject-publish"
	}
	_, err := (*ch).QueueDeclare(c.SaveQueue, true, false, false, false, args)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		if err != nil {
			return fmt.Errorf("bus: declare queue %q: %w", c.SaveQueue, err)
		}
		return nil
	}
	fresh := func() (*amqp.Channel, error) {
		ch2, err := conn.Channel()
		if err != nil {
			return nil, fmt.Errorf("bus: open channel: %w", err)
		}
		_ = (*ch).Close()
		*ch = ch2
		return ch2, nil
	}
	if t.saver {
		ch2, err2 := fresh()
		if err2 != nil {
			return err2
		}
		if n, err2 := ch2.QueueDelete(c.SaveQueue, true, true, false); err2 == nil {
			t.cfg.Logger.Warn("bus: replaced an empty, unused save queue declared with other arguments", "queue", c.SaveQueue, "deleted", n, "was", err)
			if _, err := ch2.QueueDeclare(c.SaveQueue, true, false, false, false, args); err != nil {
				return fmt.Errorf("bus: declare queue %q: %w", c.SaveQueue, err)
			}
			return nil
		}
		// Not empty, or in use (or replaced by another saver meanwhile: then the declare
		// below finds this version's queue).
		ch3, err2 := fresh()
		if err2 != nil {
			return err2
		}
		if _, err2 := ch3.QueueDeclare(c.SaveQueue, true, false, false, false, args); err2 == nil {
			return nil
		}
	}
	ch4, err2 := fresh()
	if err2 != nil {
		return err2
	}
	if _, err2 := ch4.QueueDeclarePassive(c.SaveQueue, true, false, false, false, nil); err2 != nil {
		return fmt.Errorf("bus: declare queue %q: %w", c.SaveQueue, err2)
	}
	t.cfg.Logger.Warn("bus: the save queue has other arguments than this version declares; using it as it is "+
		"(savers compete on it instead of one standing by). To recreate it: stop the savers while it is empty, "+
		"or drain it, then rabbitmqctl delete_queue "+c.SaveQueue, "queue", c.SaveQueue, "err", err)
	return nil
}

// declareNodeQueue declares and binds the node queue. A queue of the same name
// left with other arguments (an older version or configuration on the same
// ip:port) is deleted and declared again: its content is only live pushes.
func (t *rabbitTopology) declareNodeQueue(conn *amqp.Connection, ch *amqp.Channel) (int, error) {
	c := t.cfg
	args := amqp.Table{"x-expires": c.NodeQueueExpires.Milliseconds()}
	if c.NodeQueueMaxLen > 0 {
		args["x-max-length"] = int64(c.NodeQueueMaxLen)
		args["x-overflow"] = "drop-head"
	}
	q, err := ch.QueueDeclare(t.nodeQueue, true, false, false, false, args)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		t.cfg.Logger.Warn("bus: node queue has other arguments; deleting it", "queue", t.nodeQueue, "err", err)
		ch2, err2 := conn.Channel()
		if err2 != nil {
			return 0, fmt.Errorf("bus: open channel: %w", err2)
		}
		defer func() { _ = ch2.Close() }()
		if _, err2 := ch2.QueueDelete(t.nodeQueue, false, false, false); err2 != nil {
			return 0, fmt.Errorf("bus: delete queue %q: %w", t.nodeQueue, err2)
		}
		ch = ch2
		q, err = ch.QueueDeclare(t.nodeQueue, true, false, false, false, args)
	}
	if err != nil {
		return 0, fmt.Errorf("bus: declare queue %q: %w", t.nodeQueue, err)
	}
	if err := ch.QueueBind(t.nodeQueue, "", c.Exchange, false, nil); err != nil {
		return 0, fmt.Errorf("bus: bind queue %q: %w", t.nodeQueue, err)
	}
	if err := ch.QueueBind(t.nodeQueue, t.nodeRoute, c.RouteExchange, false, nil); err != nil {
		return 0, fmt.Errorf("bus: bind queue %q to %q: %w", t.nodeQueue, c.RouteExchange, err)
	}
	return q.Messages, nil
}

func (t *rabbitTopology) Stop() {}
