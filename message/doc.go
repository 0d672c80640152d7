// Package message holds the contract every role shares about a chat message on its way
// through imgate: the [Record] a node accepted, the [Saved] record after it was persisted
// with its inbox seqs, the inbox [Entry] a replay or a history read returns, the [Sink] a
// node receives persisted batches through, the limits a record must respect and the
// [ErrInvalid] error of a record that does not, and the [Offline] entry of a recipient
// who had no connected device (the offline webhook's item).
//
// It does no I/O and links no driver: the node (server/), the bus (cluster/bus), the
// dispatcher and the stores (saver/) import it; it imports only codec for the envelope's
// chatMsg.
package message
