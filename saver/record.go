package saver

import (
	"fmt"
	"time"
)

// validateBatch checks every Record of a batch before anything is written, so that an
// invalid Record fails the whole batch and nothing of it is persisted.
func validateBatch(recs []Record) error {
	for i := range recs {
		m := &recs[i].Msg
		switch {
		case m.MsgID <= 0:
			return fmt.Errorf("%w: record %d: msgId %d is not positive", ErrInvalid, i, m.MsgID)
		case m.SenderID == "":
			return fmt.Errorf("%w: record %d (msgId %d): senderId is empty", ErrInvalid, i, m.MsgID)
		case m.ReceiverID == "":
			return fmt.Errorf("%w: record %d (msgId %d): receiverId is empty", ErrInvalid, i, m.MsgID)
		case len(m.ClientMsgID) > MaxClientMsgID:
			return fmt.Errorf("%w: record %d (msgId %d): clientMsgId longer than %d bytes", ErrInvalid, i, m.MsgID, MaxClientMsgID)
		}
	}
	return nil
}

// checkLimit rejects a non-positive limit for Replay and History.
func checkLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d is not positive", ErrInvalid, limit)
	}
	return nil
}

// toMillis is how every Store keeps chatTime: Unix milliseconds, 0 for the zero time.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis is the inverse of toMillis; times come back in UTC.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// cloneExtra copies Extra (the caller may reuse its buffer); empty becomes nil.
func cloneExtra(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// peerOf is the other party of a message seen from userID's inbox.
func peerOf(userID, senderID, receiverID string) string {
	if userID == senderID {
		return receiverID
	}
	return senderID
}

// clientKey identifies a message by its sender's idempotency key.
type clientKey struct{ sender, clientMsgID string }

// wrapCtx prefixes a context error, keeping it matchable with errors.Is.
func wrapCtx(err error) error {
	return fmt.Errorf("saver: %w", err)
}
