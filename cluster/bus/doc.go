// Package bus is the RabbitMQ message bus between the roles of a cluster.
//
//   - NodeBus is a node's side: Submit publishes an accepted record to the durable save
//     queue (the node's Outbox), Relay publishes a live-only record (a SIGNED receipt) to the
//     fanout exchange (the node's Relay), and the node's own queue, bound to the fanout and
//     the route exchange, delivers persisted messages to the message.Sink given to Start.
//   - SaveConsumer is the saver's side: it consumes the save queue in batches (one saver at a
//     time: the queue has a single active consumer, further savers stand by), persists each
//     batch with its handler, fans every persisted message out, and only then acknowledges.
//
// Under both, one managed connection per part (package rabbit) reconnects with capped
// exponential backoff and declares the topology again (exchanges, queues and bindings, see
// rabbitTopology); its publisher keeps at most ConfirmWindow messages unconfirmed and sends
// the unconfirmed ones again after a reconnect, so delivery is at least once and receivers
// deduplicate by msgId. Messages are transient, the store is the truth: what a broker
// restart drops, a node recovers, publishing again the records that have no answer yet
// (Submit keeps them) and catching its users up from the store (Reconnected). Records
// travel in versioned binary batches (package wire).
//
// Names, with the default prefix "imgate.":
//
//	imgate.msg                       direct exchange the nodes publish records to
//	imgate.msg.save                  durable save queue (and its routing key)
//	imgate.fanout                    fanout exchange of persisted messages (--delivery fanout)
//	imgate.route                     direct exchange of persisted messages keyed by node id (routed)
//	imgate.node.127.0.0.1_8875       a node's queue, bound to the fanout and, with its node id, to the route
//
// Every call that does I/O runs on the bus's own goroutines: Submit and Relay never block
// and may be called from event loops.
package bus
