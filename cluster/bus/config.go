package bus

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"imgate/cluster/rabbit"
)

// Config configures the RabbitMQ bus. The zero value of every field means its
// documented default; NewNodeBus and NewSaveConsumer apply the defaults (withDefaults),
// and Validate checks a Config without changing it.
type Config struct {
	// Config is the managed connection's part (URL, ConfirmWindow, reconnect backoff,
	// DialTimeout, Heartbeat, CloseTimeout, Logger) with its defaults. ReconnectMin and
	// ReconnectMax also bound the saver's retry delay after a handle error.
	rabbit.Config
	// Prefix is prepended to the default names below and to node queue names
	// (NodeQueue). Default "imgate.".
	Prefix string
	// Exchange is the fanout exchange that carries persisted messages to every node.
	// Default Prefix+"fanout" ("imgate.fanout").
	Exchange string
	// RouteExchange is the direct exchange that carries persisted messages to the
	// nodes holding a device of their users (routed delivery): each node queue is
	// bound with the node's id (Record.Node) as its key. Default Prefix+"route".
	RouteExchange string
	// SaveExchange is the direct exchange nodes publish accepted records to.
	// Default Prefix+"msg" ("imgate.msg").
	SaveExchange string
	// SaveQueue is the durable queue the saver consumes. Default Prefix+"msg.save".
	SaveQueue string
	// SaveKey is the routing key binding SaveQueue to SaveExchange. Default Prefix+"msg.save".
	SaveKey string
	// SaveQueueMaxLen bounds the save queue (x-max-length, overflow reject-publish:
	// a publish over the bound is nacked and fails with rabbit.ErrNacked). Default 1,000,000;
	// negative means no bound. Every node and saver must use the same value: the
	// broker refuses to redeclare a durable queue with other arguments.
	SaveQueueMaxLen int
	// NodeQueueMaxLen bounds each node queue (x-max-length, overflow drop-head: a node
	// that cannot keep up loses the oldest live pushes, which devices replay from the
	// store). Default 100,000; negative means no bound.
	NodeQueueMaxLen int
	// NodeQueueExpires deletes a node queue that has had no consumer for this long
	// (x-expires), so a dead node's queue stops collecting the fanout. Default 5m.
	NodeQueueExpires time.Duration
	// PublishTimeout is the deadline of an asynchronous publish (Submit, Relay)
	// and of the saver's fan-out publishes: a message not confirmed by then, resends
	// included, fails with rabbit.ErrPublishTimeout. Default 30s.
	PublishTimeout time.Duration
	// BatchRecords and BatchBytes bound one batch a node publishes (one AMQP message).
	// Defaults 256 and 256 KiB.
	BatchRecords int
	BatchBytes   int
	// BatchLinger is the longest an accepted record waits for company while an earlier
	// batch is unconfirmed; with nothing unconfirmed a record leaves at once. Default 3ms:
	// against 1 ms it measured ACK p99 60.6 against 74.7 ms at 2,000 msg/s (medians of six
	// alternated runs, lower in five) and saturation not lower, though the batches did not
	// grow; weak evidence, docs/performance.md.
	BatchLinger time.Duration
	// BatchPending bounds the records a node holds waiting for their batch; beyond it
	// Submit fails and the sender is answered ERROR unavailable. Default 16,384.
	BatchPending int
	// Unanswered bounds the records a node keeps until their result comes back from a
	// saver, to publish them again on a new broker connection (the bus's messages are
	// transient: a broker restart drops what its queues held). Beyond it Submit fails
	// and the sender is answered ERROR unavailable. Default 65,536.
	Unanswered int
	// AnswerTimeout is how long a node waits for a record's result: a record that has
	// none by then is failed (ERROR unavailable; the sender resends with its
	// clientMsgId, which the saver deduplicates). It bounds the wait for records no
	// saver will ever answer (one it refused) and for a saver outage longer than any
	// sender waits; a record still queued then may yet be stored and ACKed. Default 10m.
	AnswerTimeout time.Duration
	// SaveCommits is how many transactions the saver overlaps (each on its own database
	// connection): the next starts once the previous holds its locks. Default 1: a batch
	// with nothing stored before is saved in one round trip that holds its locks only
	// inside PostgreSQL (saver.Postgres.SaveOrdered), so a second slot only let the next
	// batch be taken early and wait, already formed, for the commit before it; with one,
	// the next batch is taken when the slot frees and holds everything that arrived
	// meanwhile (measured at 2,000 msg/s, delivery p99 median of 3: 88 ms with two slots
	// and the batch taken early, 71 ms with two slots and the gate, 51 ms with one;
	// saturation not lower, docs/performance.md).
	SaveCommits int
	// SavePipeline is how many committed batches may wait for their fan-out confirms
	// while the saver commits and publishes the next ones. Default SavePrefetch: as many
	// as there can be (a batch holds at least one delivery), so a slow confirm delays
	// the acknowledgements only, never the next batch's commit or fan-out.
	SavePipeline int
	// NodePrefetch is the Qos prefetch of the node queue consumer. Default 1024.
	NodePrefetch int
	// NodeBatch is the largest batch handed to the node's deliver. Default 256.
	NodeBatch int
	// SavePrefetch is the Qos prefetch of the save queue consumer. Default 1024.
	SavePrefetch int
	// SaveBatch is the most save-queue deliveries (each a node's batch of up to
	// BatchRecords) the saver commits in one transaction, and SaveBatchBytes the most
	// bytes of them (the delivery that crosses it included): a transaction takes what
	// waits, within both. Defaults 1024 and 512 KiB (about 2,000 records). At a fixed
	// rate node batches are small (one to a few records), so a bound in deliveries alone
	// made a slow transaction's successor too small to catch up.
	SaveBatch      int
	SaveBatchBytes int
	// SaveTimeout bounds one handler call (a store transaction): a store that does not
	// answer (a half-open connection, a partition) fails the batch instead of holding
	// the saver for as long as TCP keepalive takes. Default 15s.
	SaveTimeout time.Duration
	// ReceiveAge, when set, is called by the saver with each record's age when its
	// delivery is taken from the save queue (now minus its chatTime, which the
	// accepting node stamped with millisecond resolution): the node → broker → saver
	// hop plus the wait in the save queue. It must not block. Default: none.
	ReceiveAge func(time.Duration)
}

// withDefaults returns c with every zero field set to its default. It is the only place
// the defaults are written down in code.
func (c Config) withDefaults() Config {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	c.Config = c.WithDefaults() // rabbit.Config's: bus.Config has only the unexported withDefaults
	setStr(&c.Prefix, "imgate.")
	setStr(&c.Exchange, c.Prefix+"fanout")
	setStr(&c.RouteExchange, c.Prefix+"route")
	setStr(&c.SaveExchange, c.Prefix+"msg")
	setStr(&c.SaveQueue, c.Prefix+"msg.save")
	setStr(&c.SaveKey, c.Prefix+"msg.save")
	setInt(&c.SaveQueueMaxLen, 1_000_000)
	setInt(&c.NodeQueueMaxLen, 100_000)
	setDur(&c.NodeQueueExpires, 5*time.Minute)
	setDur(&c.PublishTimeout, 30*time.Second)
	setInt(&c.BatchRecords, 256)
	setInt(&c.BatchBytes, 256<<10)
	setDur(&c.BatchLinger, 3*time.Millisecond)
	setInt(&c.BatchPending, 16384)
	setInt(&c.Unanswered, 65536)
	setDur(&c.AnswerTimeout, 10*time.Minute)
	setInt(&c.SaveCommits, 1)
	setInt(&c.NodePrefetch, 1024)
	setInt(&c.NodeBatch, 256)
	setInt(&c.SavePrefetch, 1024)
	setInt(&c.SavePipeline, c.SavePrefetch)
	setInt(&c.SaveBatch, 1024)
	setInt(&c.SaveBatchBytes, 512<<10)
	setDur(&c.SaveTimeout, 15*time.Second)
	return c
}

// Validate reports the first invalid field of c. Zero values are valid (they mean the
// default); c itself is not changed.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	switch {
	case c.Exchange == c.SaveExchange || c.RouteExchange == c.SaveExchange || c.RouteExchange == c.Exchange:
		return errors.New("bus: Exchange, RouteExchange and SaveExchange must differ")
	case c.BatchRecords < 1 || c.BatchBytes < 1 || c.BatchLinger < 0 || c.BatchPending < c.BatchRecords:
		return errors.New("bus: need BatchRecords, BatchBytes positive, BatchLinger not negative, BatchPending >= BatchRecords")
	case c.SavePipeline < 1 || c.SaveCommits < 1:
		return errors.New("bus: SavePipeline and SaveCommits must be positive")
	case c.NodePrefetch < 1 || c.NodeBatch < 1 || c.SavePrefetch < 1 || c.SaveBatch < 1 || c.SaveBatchBytes < 1:
		return errors.New("bus: prefetch and batch sizes must be positive")
	case c.NodeBatch > c.NodePrefetch || c.SaveBatch > c.SavePrefetch:
		return errors.New("bus: a batch cannot exceed its prefetch")
	case c.Unanswered < c.BatchPending || c.AnswerTimeout < 0:
		return errors.New("bus: Unanswered must be at least BatchPending and AnswerTimeout not negative")
	case c.SaveTimeout < 0:
		return errors.New("bus: SaveTimeout must not be negative")
	case c.PublishTimeout < 0 || c.NodeQueueExpires < time.Second:
		return errors.New("bus: PublishTimeout must be positive and NodeQueueExpires at least 1s")
	}
	return nil
}

// NodeQueue returns the name of the queue of the node listening on ip:port:
// Prefix+"node."+NodeRoute(ip, port) ("imgate.node.10.0.0.5_875").
func (c Config) NodeQueue(ip string, port int) string {
	return c.withDefaults().Prefix + "node." + NodeRoute(ip, port)
}

// NodeRoute is the id of the node listening on ip:port in records (Record.Node) and its
// key on the route exchange: ip+"_"+port ("10.0.0.5_875").
func NodeRoute(ip string, port int) string {
	return ip + "_" + strconv.Itoa(port)
}
