package saver

import (
	"context"
	"errors"

	"imgate/codec"
)

// ErrClosed is returned by a Store or Batcher used after Close.
var ErrClosed = errors.New("saver: closed")

// Record is a content message accepted by a node, on its way to the store.
type Record struct {
	// Msg has MsgID and ChatTime assigned by the accepting node; Msg.Seq is ignored.
	Msg codec.ChatMsg
	// SenderConn is the id of the sender's connection (the envelope's extend).
	SenderConn string
	// Node is the id of the node that accepted the message; it sends the ACK.
	Node string
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
	// Duplicate is true for a client's resend: a record whose (senderId, clientMsgId) was
	// stored before under another msgId. Acknowledge it again, deliver it to nobody. A
	// record stored before under its own msgId (delivered again by the broker, saved again
	// after a crash between commit and fan-out) is not a duplicate: it comes back with
	// its stored seqs and is pushed again; devices drop what they saw by msgId.
	Duplicate bool
}

// Entry is one message in one user's inbox. Msg.Seq equals Seq.
type Entry struct {
	Seq        int64
	Msg        codec.ChatMsg
	SenderConn string
}

// Store persists messages into per-user inboxes with gap-free, strictly increasing seqs.
// Implementations are safe for concurrent use.
//
// Common to every implementation (and checked by package storetest): chatTime is kept
// at millisecond precision and read back in UTC; Extra is kept byte for byte (nil when
// empty); seqs are assigned in commit order, so a reader never sees seq N+1 of a user
// without seq N; a Record that fails [Record.Validate] fails its batch with an error
// wrapping [ErrInvalid]; a non-positive limit is an error wrapping ErrInvalid; every
// method returns [ErrClosed] after Close, and Close is idempotent.
type Store interface {
	// Save persists recs in one transaction, in order, and returns one Saved per Record
	// in the same order. It is idempotent on Msg.MsgID and on (Msg.SenderID, Msg.ClientMsgID)
	// when ClientMsgID is not empty. On error nothing of the batch is persisted.
	Save(ctx context.Context, recs []Record) ([]Saved, error)
	// Replay returns up to limit entries of userID's inbox with seq > afterSeq, ascending.
	Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]Entry, error)
	// LastSeq returns the newest seq of userID's inbox, 0 when it is empty.
	LastSeq(ctx context.Context, userID string) (int64, error)
	// History returns up to limit entries of userID's inbox exchanged with peerID
	// (every peer when peerID is empty) with seq < beforeSeq (no bound when beforeSeq
	// is 0), newest first.
	History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]Entry, error)
	// Close releases the store; it flushes nothing because Save is synchronous.
	Close() error
}
