package saver

import (
	"fmt"
	"strconv"
	"time"

	"imgate/message"
)

// validateBatch checks every Record of a batch before anything is written, so that an
// invalid Record fails the whole batch and nothing of it is persisted.
func validateBatch(recs []message.Record) error {
	for i := range recs {
		if err := recs[i].Validate(); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	return nil
}

// checkLimit rejects a non-positive limit for Replay and History.
func checkLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d is not positive", message.ErrInvalid, limit)
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

// clientKey identifies a message by its sender's idempotency key.
type clientKey struct{ sender, clientMsgID string }

// wrapCtx prefixes a context error, keeping it matchable with errors.Is.
func wrapCtx(err error) error {
	return fmt.Errorf("saver: %w", err)
}

// assign is the in-memory half of a Save shared by the SQL stores. It walks recs in
// order; a record that duplicates a stored message (in found, by msgId then by
// (senderId, clientMsgId)) or an earlier record of the batch gets that message's Saved
// with the resend's SenderConn and Node; the others get the next seqs from heads
// (user → last seq, advanced in place). fresh lists the indexes of the new messages.
func assign(recs []message.Record, found []message.Saved, heads map[string]int64) (out []message.Saved, fresh []int) {
	byID := make(map[int64]int, len(found)) // → index in found (>= 0) or -1-index in out
	byKey := make(map[clientKey]int, len(found))
	for i := range found {
		byID[found[i].Msg.MsgID] = i
		if k := found[i].Msg.ClientMsgID; k != "" {
			byKey[clientKey{found[i].Msg.SenderID, k}] = i
		}
	}
	lookup := func(ix int) *message.Saved {
		if ix >= 0 {
			return &found[ix]
		}
		return &out[-1-ix]
	}
	out = make([]message.Saved, len(recs))
	for i := range recs {
		r := &recs[i]
		ix, ok := byID[r.Msg.MsgID]
		if !ok && r.Msg.ClientMsgID != "" {
			ix, ok = byKey[clientKey{r.Msg.SenderID, r.Msg.ClientMsgID}]
		}
		if ok {
			first := lookup(ix)
			out[i] = duplicateOf(first.Record, r, first.ReceiverSeq, first.SenderSeq)
			continue
		}
		m := normalizeRecord(r)
		snd, rcv := m.Msg.SenderID, m.Msg.ReceiverID
		heads[rcv]++
		rseq, sseq := heads[rcv], heads[rcv]
		if snd != rcv {
			heads[snd]++
			sseq = heads[snd]
		}
		out[i] = message.Saved{Record: m, ReceiverSeq: rseq, SenderSeq: sseq}
		fresh = append(fresh, i)
		byID[m.Msg.MsgID] = -1 - i
		if m.Msg.ClientMsgID != "" {
			byKey[clientKey{snd, m.Msg.ClientMsgID}] = -1 - i
		}
	}
	return out, fresh
}

// entryRows is what the rows of both drivers offer (pgx.Rows, *sql.Rows).
type entryRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanEntries reads inbox rows of (seq, message columns) into entries.
func scanEntries(rows entryRows, limit int) ([]message.Entry, error) {
	out := make([]message.Entry, 0, min(limit, 64))
	for rows.Next() {
		var seq int64
		var mr msgRow
		if err := rows.Scan(append([]any{&seq}, mr.dest()...)...); err != nil {
			return nil, err
		}
		m := mr.saved()
		m.Msg.Seq = seq
		out = append(out, message.Entry{Seq: seq, Msg: m.Msg, SenderConn: m.SenderConn})
	}
	return out, rows.Err()
}

// connText is how the stores keep a sender connection id: decimal text, ” for none
// (the column predates the numeric id).
func connText(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

// connFromText is the inverse of connText; text that is not a number reads as none.
func connFromText(s string) uint64 {
	id, _ := strconv.ParseUint(s, 10, 64)
	return id
}
