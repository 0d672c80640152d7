// Package wire is the body format of the RabbitMQ bus (package bus): a versioned binary
// batch of records, one AMQP message carrying many (the broker's cost is per message).
// Kinds: accepted records (node → save queue), persisted records (saver → nodes) and
// live records (SIGNED receipts, node → every node). The layout is in batch.go; a
// decoder refuses one bad record and keeps the others.
package wire
