package saver

import (
	"context"
	"errors"

	"imgate/message"
)

// ErrClosed is returned by a Store or Batcher used after Close.
var ErrClosed = errors.New("saver: closed")

// Store persists messages into per-user inboxes with gap-free, strictly increasing seqs.
// Implementations are safe for concurrent use.
//
// Common to every implementation (and checked by package storetest): chatTime is kept
// at millisecond precision and read back in UTC; Extra is kept byte for byte (nil when
// empty); seqs are assigned in commit order, so a reader never sees seq N+1 of a user
// without seq N; a Record that fails [message.Record.Validate] fails its batch with an
// error wrapping [message.ErrInvalid]; a non-positive limit is an error wrapping
// message.ErrInvalid; every
// method returns [ErrClosed] after Close, and Close is idempotent.
type Store interface {
	// Save persists recs in one transaction, in order, and returns one Saved per Record
	// in the same order. It is idempotent on Msg.MsgID and on (Msg.SenderID, Msg.ClientMsgID)
	// when ClientMsgID is not empty. On error nothing of the batch is persisted.
	Save(ctx context.Context, recs []message.Record) ([]message.Saved, error)
	// Replay returns up to limit entries of userID's inbox with seq > afterSeq, ascending.
	Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error)
	// LastSeq returns the newest seq of userID's inbox, 0 when it is empty.
	LastSeq(ctx context.Context, userID string) (int64, error)
	// History returns up to limit entries of userID's inbox exchanged with peerID
	// (every peer when peerID is empty) with seq < beforeSeq (no bound when beforeSeq
	// is 0), newest first.
	History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error)
	// Close releases the store; it flushes nothing because Save is synchronous.
	Close() error
}
