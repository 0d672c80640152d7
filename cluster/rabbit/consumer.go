package rabbit

import (
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Consumer consumes one queue with manual acks and hands over batches: it
// blocks for the first delivery, then takes whatever else already arrived, up to
// Batch deliveries and BatchBytes of bodies, without waiting.
type Consumer struct {
	Queue    string
	Prefetch int
	Batch    int
	// BatchBytes ends a batch once its bodies add up to it (the delivery that crosses
	// it included); 0: no bound but Batch.
	BatchBytes int
	// Handle acknowledges (or rejects) the batch itself, on ch.
	Handle func(ch *amqp.Channel, batch []amqp.Delivery)
	// Gate, when set, is called once the first delivery of a batch has arrived and before
	// the rest is taken: a consumer that can handle only so many batches at once waits
	// there, so the batch it then takes holds everything that arrived meanwhile instead
	// of what had arrived before it waited. It returns false when the consumer stops.
	Gate func() bool
	// Detached: Stop does not wait for a batch being handled (Handle may wait for
	// the next connection); WG, when set, still counts the loop so the owner can wait.
	Detached bool
	WG       *sync.WaitGroup

	stopCh chan struct{}
	own    sync.WaitGroup
}

func (c *Consumer) Start(s *Session) error {
	ch, err := s.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(c.Prefetch, 0, false); err != nil {
		return fmt.Errorf("rabbit: qos: %w", err)
	}
	deliveries, err := ch.Consume(c.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("rabbit: consume %q: %w", c.Queue, err)
	}
	c.stopCh = make(chan struct{})
	c.own.Add(1)
	if c.WG != nil {
		c.WG.Add(1)
	}
	go c.loop(s, ch, deliveries, c.stopCh)
	return nil
}

func (c *Consumer) loop(s *Session, ch *amqp.Channel, deliveries <-chan amqp.Delivery, stop <-chan struct{}) {
	defer func() {
		c.own.Done()
		if c.WG != nil {
			c.WG.Done()
		}
	}()
	// amqp091 hands deliveries over an unbuffered channel, so a non-blocking receive
	// after the first one rarely finds a second: batches would stay at one message and
	// the saver would commit one transaction per message. A pump copies deliveries into
	// a buffer as large as the prefetch window while handle runs, so the next batch is
	// everything that arrived meanwhile, with no added wait when the queue is idle.
	buf := make(chan amqp.Delivery, max(c.Prefetch, c.Batch))
	go func() {
		defer close(buf)
		for d := range deliveries {
			select {
			case buf <- d:
			case <-stop:
				return
			}
		}
	}()
	batch := make([]amqp.Delivery, 0, c.Batch)
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-buf:
		case <-stop:
			return
		}
		if !ok {
			// The channel closed, or the broker cancelled the consumer (its queue was
			// deleted): start over on a new connection, which declares the queue again.
			s.Kill(fmt.Errorf("rabbit: consumer of %q cancelled", c.Queue))
			return
		}
		if c.Gate != nil && !c.Gate() {
			return // stopping: the delivery goes back to the queue with the channel
		}
		batch = c.fill(append(batch[:0], d), buf)
		c.Handle(ch, batch)
		clear(batch)
	}
}

// fill appends to batch (which holds the first delivery) what already waits in buf,
// without waiting, until batch holds Batch deliveries or BatchBytes of bodies.
func (c *Consumer) fill(batch []amqp.Delivery, buf <-chan amqp.Delivery) []amqp.Delivery {
	size := 0
	for _, d := range batch {
		size += len(d.Body)
	}
	for len(batch) < c.Batch && (c.BatchBytes <= 0 || size < c.BatchBytes) {
		select {
		case d, ok := <-buf:
			if !ok {
				return batch // the loop sees the close at its next receive
			}
			batch = append(batch, d)
			size += len(d.Body)
		default:
			return batch
		}
	}
	return batch
}

func (c *Consumer) Stop() {
	if c.stopCh == nil {
		return
	}
	close(c.stopCh)
	c.stopCh = nil
	if !c.Detached {
		c.own.Wait()
	}
}
