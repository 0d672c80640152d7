// Package wire is the body format of the RabbitMQ bus (package bus): one flat JSON object per
// message.Record (node → save queue) or message.Saved (saver → fanout → nodes). It is the
// contract between nodes and savers of different versions, so its field names and encodings
// never change: msgId a decimal string, chatTime RFC 3339 in UTC, senderConn a decimal uint64,
// extra carried byte for byte.
package wire
