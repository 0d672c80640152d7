package bus

import (
	"context"
	"fmt"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/rabbit"
)

// depthProbe is a component that only remembers the current AMQP connection, so that
// SaveQueueDepth can open a short-lived channel of its own on it: a passive declare
// that fails closes only that channel, never the consumer's.
type depthProbe struct {
	conn atomic.Pointer[amqp.Connection]
}

func (d *depthProbe) Start(s *rabbit.Session) error { d.conn.Store(s.Conn()); return nil }
func (d *depthProbe) Stop()                         { d.conn.Store(nil) }

// SaveQueueDepth returns the number of messages (nodes' batches) ready in the save
// queue, read with a passive queue declare on a channel of its own. It fails while the
// broker is down. ctx bounds the wait for the broker's answer; the call itself may
// finish later on its own.
func (c *SaveConsumer) SaveQueueDepth(ctx context.Context) (int, error) {
	conn := c.depth.conn.Load()
	if conn == nil {
		return 0, fmt.Errorf("%w: not connected", rabbit.ErrUnavailable)
	}
	type answer struct {
		n   int
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		amqpCh, err := conn.Channel()
		if err != nil {
			ch <- answer{err: fmt.Errorf("bus: save queue depth: %w", err)}
			return
		}
		defer func() { _ = amqpCh.Close() }()
		q, err := amqpCh.QueueDeclarePassive(c.cfg.SaveQueue, true, false, false, false, nil)
		if err != nil {
			ch <- answer{err: fmt.Errorf("bus: save queue depth: %w", err)}
			return
		}
		ch <- answer{n: q.Messages}
	}()
	select {
	case a := <-ch:
		return a.n, a.err
	case <-ctx.Done():
		return 0, fmt.Errorf("bus: save queue depth: %w", ctx.Err())
	}
}
