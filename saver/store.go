package saver

import (
	"context"
	"errors"
	"fmt"

	"imgate/message"
)

// ErrClosed is returned by a Store or Batcher used after Close.
var ErrClosed = errors.New("saver: closed")

// Store persists messages into per-user inboxes (a group message into the inbox of
// every member and of its sender, each with that user's seq; Save reads the group's
// members in the transaction that assigns the seqs, so a membership change applies to
// every message saved after it returned) with gap-free, strictly increasing seqs.
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
	// LastSeqs returns the newest seq of each of users' inboxes (0 for an empty one), in
	// the order of users, read at one point in time: a node binding many devices at once
	// asks once instead of once per device. Repeated users are allowed.
	LastSeqs(ctx context.Context, users []string) ([]int64, error)
	// History returns up to limit entries of userID's inbox exchanged with peerID
	// (one-to-one messages only), or every entry when peerID is empty (group messages
	// included), with seq < beforeSeq (no bound when beforeSeq is 0), newest first.
	History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error)
	// GroupHistory returns up to limit entries of userID's inbox that are messages of
	// groupID, with seq < beforeSeq (no bound when 0), newest first: what the user
	// received while a member (or sent).
	GroupHistory(ctx context.Context, userID, groupID string, beforeSeq int64, limit int) ([]message.Entry, error)

	// PutGroup creates groupID or replaces its members, and returns them sorted and
	// distinct. Ids must pass message.ValidID (else an error wrapping
	// message.ErrInvalid). The next Save of a message to the group uses them.
	PutGroup(ctx context.Context, groupID string, members []string) ([]string, error)
	// Group returns the members of groupID, sorted; message.ErrUnknownGroup when it
	// does not exist.
	Group(ctx context.Context, groupID string) ([]string, error)
	// UpdateGroup adds, then removes members of groupID atomically and returns the
	// members after the change: message.ErrUnknownGroup when the group does not exist,
	// message.ErrGroupFull (nothing changed) when it would have more than maxMembers
	// (0: no limit).
	UpdateGroup(ctx context.Context, groupID string, add, remove []string, maxMembers int) ([]string, error)
	// DeleteGroup removes groupID (its messages stay in the inboxes);
	// message.ErrUnknownGroup when it does not exist.
	DeleteGroup(ctx context.Context, groupID string) error
	// Close releases the store; it flushes nothing because Save is synchronous.
	Close() error
}

// lastSeqOf is every store's LastSeq: its LastSeqs of one user.
func lastSeqOf(ctx context.Context, s interface {
	LastSeqs(context.Context, []string) ([]int64, error)
}, userID string) (int64, error) {
	last, err := s.LastSeqs(ctx, []string{userID})
	if err != nil {
		return 0, err
	}
	return last[0], nil
}

// seqRows is what scanLastSeqs reads, from either driver: rows of (1-based ordinal of the
// user in the call, newest seq).
type seqRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanLastSeqs is every SQL store's reading of LastSeqs' rows for n users.
func scanLastSeqs(rows seqRows, n int) ([]int64, error) {
	out := make([]int64, n)
	for rows.Next() {
		var i, last int64
		if err := rows.Scan(&i, &last); err != nil {
			return nil, err
		}
		if i < 1 || i > int64(n) {
			return nil, fmt.Errorf("ordinal %d of %d users", i, n)
		}
		out[i-1] = last
	}
	return out, rows.Err()
}
