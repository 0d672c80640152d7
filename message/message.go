package message

import "imgate/codec"

// Record is a content message accepted by a node, on its way to the store.
type Record struct {
	// Msg has MsgID and ChatTime assigned by the accepting node; Msg.Seq is ignored.
	Msg codec.ChatMsg
	// SenderConn is the id of the sender's connection (the envelope's extend, in
	// decimal); 0 means none (a message that did not come from a connection).
	SenderConn uint64
	// Node is the id of the node that accepted the message; it sends the ACK.
	Node string
	// Server marks a message sent through the server API (PROTOCOL §8): its sender may
	// be any id, and a group message from it needs no membership.
	Server bool
	// Broadcast marks a live-only message to every connected device (POST
	// /api/v1/broadcast): no receiver, no group, never stored.
	Broadcast bool
}

// MemberSeq is one recipient of a group message and the message's seq in that
// recipient's inbox.
type MemberSeq struct {
	User string
	Seq  int64
}

// Saved is a Record after it was persisted.
type Saved struct {
	// Record is the message as stored. For a duplicate it is the first message stored
	// under the same msgId or (senderId, clientMsgId), with that message's MsgID and
	// ChatTime, but SenderConn and Node of the resend (so the resend gets the ACK).
	Record
	// ReceiverSeq and SenderSeq are the message's positions in the receiver's and the
	// sender's inbox. They are equal when sender and receiver are the same user.
	// Msg.Seq is 0 because the seq depends on whose inbox: deliver with ReceiverSeq to
	// the receiver's devices and with SenderSeq to the sender's other devices.
	ReceiverSeq int64
	SenderSeq   int64
	// Members are the recipients of a group message (Msg.GroupID set) with their
	// inbox seqs, sorted by user: the group's members when it was persisted, and its
	// sender. Empty for a one-to-one message, for a Forbidden one, and for a group
	// message saved again under its own msgId (the stores do not look its rows up
	// again; devices get it by replay or gap repair). On the way to one node the saver
	// keeps only the members with a device there (cluster/bus).
	Members []MemberSeq
	// Forbidden is true for a group message the store refused: the group is unknown or
	// its sender is not a member (and the message is not Server). Nothing of it is
	// persisted; the sender gets ERROR forbidden.
	Forbidden bool
	// Duplicate is true for a client's resend: a record whose (senderId, clientMsgId) was
	// stored before under another msgId. Acknowledge it again, deliver it to nobody. A
	// record stored before under its own msgId (delivered again by the broker, saved again
	// after a crash between commit and fan-out) is not a duplicate: it comes back with
	// its stored seqs and is pushed again; devices drop what they saw by msgId.
	Duplicate bool
}

// Entry is one message in one user's inbox. Msg.Seq equals Seq.
// For a group message Msg.GroupID is set and Msg.ReceiverID is empty.
type Entry struct {
	Seq        int64
	Msg        codec.ChatMsg
	SenderConn uint64
}

// Sink receives the outcome of accepted records: the node implements it, and whatever
// persists records (the standalone batcher, the cluster bus) reports to it. Both methods
// may be called from any goroutine and must not block for long.
type Sink interface {
	// Saved is called with a persisted batch: acknowledge every record whose sender is
	// connected here, push those that are not Duplicate. The slice is the sink's to keep.
	Saved(batch []Saved)
	// Failed is called with records that were not persisted, and why. Their senders get
	// ERROR unavailable and retry with the same clientMsgId. The slice is the sink's to keep.
	Failed(recs []Record, err error)
}

// Offline is one persisted message for one recipient who had no connected device when
// it was delivered: what the offline webhook reports (PROTOCOL §8). A p2p message gives
// at most one (its receiver, never its sender); a group message one per member without
// a device. Msg is the message as persisted; Seq its position in UserID's inbox.
type Offline struct {
	UserID string
	Seq    int64
	Msg    codec.ChatMsg
}

// NotifiesOffline reports whether user, a recipient of m stored at seq in user's inbox,
// is reported to the offline webhook when it has no connected device: only persisted
// (seq > 0) content messages count, and never for their sender, who just sent the
// message (or is the server API's sender, which has no devices to wake).
func NotifiesOffline(user string, seq int64, m *codec.ChatMsg) bool {
	return seq > 0 && m.MsgType.IsContent() && user != m.SenderID
}
