package saver

import (
	"errors"
	"fmt"
	"math"
	"slices"
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
		if recs[i].Broadcast {
			return fmt.Errorf("record %d: %w: a broadcast is never stored", i, message.ErrInvalid)
		}
	}
	return nil
}

// checkLimit rejects a non-positive limit for Replay and History.
// historyBefore checks a history read's limit and returns its beforeSeq, 0 or less
// meaning from the newest.
func historyBefore(beforeSeq int64, limit int) (int64, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	return beforeSeq, nil
}

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

// assign is the in-memory half of a Save shared by the stores. It walks recs in
// order; a record that duplicates a stored message (in found, by msgId then by
// (senderId, clientMsgId)) or an earlier record of the batch gets that message's Saved
// with the resend's SenderConn and Node; the others get the next seqs from heads
// (user → last seq, advanced in place; it must hold every user of lockUsers). A group
// message (Msg.GroupID) enters the inbox of every member of groups[GroupID] (sorted
// members; a group missing from groups does not exist) and of its sender; one whose
// group does not exist, or whose sender is not a member and not Server, is Forbidden
// and gets no seq. fresh lists the indexes of the new messages.
func assign(recs []message.Record, found []message.Saved, heads map[string]int64, groups map[string][]string) (out []message.Saved, fresh []int) {
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
			if !out[i].Duplicate {
				out[i].Members = first.Members
			}
			// A later record with this one's msgId or clientMsgId is a duplicate of the
			// same first: so the records new in a batch never depend on what was stored
			// before other than by shrinking (the PostgreSQL save counts each user's seqs
			// over a pass that does not know the stored records, then assigns them over
			// one that does).
			if _, seen := byID[r.Msg.MsgID]; !seen {
				byID[r.Msg.MsgID] = ix
			}
			if k := r.Msg.ClientMsgID; k != "" {
				if _, seen := byKey[clientKey{r.Msg.SenderID, k}]; !seen {
					byKey[clientKey{r.Msg.SenderID, k}] = ix
				}
			}
			continue
		}
		m := normalizeRecord(r)
		snd, rcv := m.Msg.SenderID, m.Msg.ReceiverID
		if gid := m.Msg.GroupID; gid != "" {
			members, exists := groups[gid]
			if _, member := slices.BinarySearch(members, snd); !exists || !member && !m.Server {
				out[i] = message.Saved{Record: m, Forbidden: true}
				continue
			}
			out[i] = message.Saved{Record: m, Members: memberSeqs(members, snd, heads)}
			out[i].SenderSeq = senderSeq(&out[i])
		} else {
			heads[rcv]++
			rseq, sseq := heads[rcv], heads[rcv]
			if snd != rcv {
				heads[snd]++
				sseq = heads[snd]
			}
			out[i] = message.Saved{Record: m, ReceiverSeq: rseq, SenderSeq: sseq}
		}
		fresh = append(fresh, i)
		byID[m.Msg.MsgID] = -1 - i
		if m.Msg.ClientMsgID != "" {
			byKey[clientKey{snd, m.Msg.ClientMsgID}] = -1 - i
		}
	}
	return out, fresh
}

// memberSeqs gives every member (sorted) and the sender their next seq, sorted by user.
// The Saved's SenderSeq is the sender's entry.
func memberSeqs(members []string, sender string, heads map[string]int64) []message.MemberSeq {
	out := make([]message.MemberSeq, 0, len(members)+1)
	_, member := slices.BinarySearch(members, sender)
	add := func(u string) {
		heads[u]++
		out = append(out, message.MemberSeq{User: u, Seq: heads[u]})
	}
	for _, u := range members {
		if !member && sender < u {
			add(sender)
			member = true
		}
		add(u)
	}
	if !member {
		add(sender)
	}
	return out
}

// senderSeq is the seq of s in its sender's inbox.
func senderSeq(s *message.Saved) int64 {
	if s.Msg.GroupID == "" {
		return s.SenderSeq
	}
	for _, ms := range s.Members {
		if ms.User == s.Msg.SenderID {
			return ms.Seq
		}
	}
	return 0
}

// groupIDs returns the distinct groups of recs' group messages, sorted.
func groupIDs(recs []message.Record) []string {
	var ids []string
	for i := range recs {
		if g := recs[i].Msg.GroupID; g != "" {
			ids = append(ids, g)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// lockUsers returns every user whose inbox head a Save of recs may advance, sorted:
// senders, receivers and the members of the batch's groups.
func lockUsers(recs []message.Record, groups map[string][]string) []string {
	users := make([]string, 0, 2*len(recs))
	for i := range recs {
		m := &recs[i].Msg
		users = append(users, m.SenderID)
		if m.GroupID != "" {
			users = append(users, groups[m.GroupID]...)
		} else {
			users = append(users, m.ReceiverID)
		}
	}
	slices.Sort(users)
	return slices.Compact(users)
}

// normalizeMembers checks a group's member ids and returns them sorted and distinct.
func normalizeMembers(groupID string, members []string) ([]string, error) {
	if !message.ValidID(groupID) {
		return nil, fmt.Errorf("%w: group id %q", message.ErrInvalid, groupID)
	}
	out := slices.Clone(members)
	for _, u := range out {
		if !message.ValidID(u) {
			return nil, fmt.Errorf("%w: member id %q", message.ErrInvalid, u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// applyChange is a membership change on sorted members: add first, then remove. It
// fails with message.ErrGroupFull when the result has more than maxMembers (0: no limit).
func applyChange(members, add, remove []string, maxMembers int) ([]string, error) {
	set := make(map[string]struct{}, len(members)+len(add))
	for _, u := range slices.Concat(members, add) {
		set[u] = struct{}{}
	}
	for _, u := range remove {
		delete(set, u)
	}
	if maxMembers > 0 && len(set) > maxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", message.ErrGroupFull, len(set), maxMembers)
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
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

// forInbox calls row for every inbox row of the new message m: the receiver's and the
// sender's (one row when they are the same user), or one per recipient of a group
// message, whose peer is the group.
func forInbox(m *message.Saved, row func(user string, seq int64, peer string)) {
	snd, rcv := m.Msg.SenderID, m.Msg.ReceiverID
	if gid := m.Msg.GroupID; gid != "" {
		for _, ms := range m.Members {
			row(ms.User, ms.Seq, gid)
		}
		return
	}
	row(rcv, m.ReceiverSeq, snd)
	if snd != rcv {
		row(snd, m.SenderSeq, rcv)
	}
}

// groupRows is what reading groups with their members yields: (group, member) pairs,
// member NULL for a group without members.
type groupRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanGroups reads (group_id, user_id) rows into group → sorted members; every group
// that exists has an entry, empty or not.
func scanGroups(rows groupRows) (map[string][]string, error) {
	out := make(map[string][]string)
	for rows.Next() {
		var g string
		var u *string
		if err := rows.Scan(&g, &u); err != nil {
			return nil, err
		}
		if u == nil {
			out[g] = out[g][:0:0]
			continue
		}
		out[g] = append(out[g], *u)
	}
	return out, rows.Err()
}

// isGroupErr reports the errors of the group contract, returned to callers unwrapped.
func isGroupErr(err error) bool {
	return errors.Is(err, message.ErrUnknownGroup) || errors.Is(err, message.ErrGroupFull)
}
