// Package rabbit is a managed RabbitMQ connection and what runs on it.
//
//   - Conn owns one AMQP connection at a time: it dials, starts its components in order on
//     every new connection, watches for the connection's end (or a broker's publishing
//     block) and redials with capped exponential backoff and jitter; while it waits it
//     probes the broker every Config.ProbeInterval and redials at once when a silent
//     broker answers again. State and Ready say whether it is up.
//   - Publisher publishes transient messages with confirms, mandatory, at most
//     Config.ConfirmWindow unconfirmed, and sends the unconfirmed ones again, in order, on
//     the next connection: delivery is at least once.
//   - Consumer consumes one queue with manual acks and hands over batches.
//
// It knows no exchange, queue or message format: package bus declares the topology and
// speaks the imgate records over it.
package rabbit
