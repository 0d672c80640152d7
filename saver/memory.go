package saver

import (
	"context"
	"slices"
	"sync"

	"imgate/message"
)

var _ Store = (*Memory)(nil)

// Memory is a [Store] kept in process memory: the unit-test double and `--store memory`.
// It has the same semantics as the durable stores (idempotency, gap-free seqs, ordering)
// but loses everything when the process exits. It is safe for concurrent use; Save holds
// one mutex for the whole batch, which makes a batch atomic and seqs commit-ordered.
type Memory struct {
	mu       sync.RWMutex
	closed   bool
	byID     map[int64]*memMsg     // guarded by mu
	byClient map[clientKey]*memMsg // guarded by mu
	inbox    map[string][]memRow   // guarded by mu; a user's rows in seq order, seq = index+1
	groups   map[string][]string   // guarded by mu; group → sorted members
}

// memMsg is one stored message with the seqs it got.
type memMsg struct {
	rec         message.Record
	receiverSeq int64
	senderSeq   int64
}

// memRow is one inbox row; peer is the other user, or the group of a group message.
type memRow struct {
	msg  *memMsg
	peer string
}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{
		byID:     make(map[int64]*memMsg),
		byClient: make(map[clientKey]*memMsg),
		inbox:    make(map[string][]memRow),
		groups:   make(map[string][]string),
	}
}

// Save implements [Store.Save].
func (s *Memory) Save(ctx context.Context, recs []message.Record) ([]message.Saved, error) {
	if err := validateBatch(recs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, wrapCtx(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var found []message.Saved
	for i := range recs {
		if m := s.findLocked(&recs[i]); m != nil {
			found = append(found, message.Saved{Record: m.rec, ReceiverSeq: m.receiverSeq, SenderSeq: m.senderSeq})
		}
	}
	groups := make(map[string][]string)
	for _, g := range groupIDs(recs) {
		if members, ok := s.groups[g]; ok {
			groups[g] = members
		}
	}
	heads := make(map[string]int64)
	for _, u := range lockUsers(recs, groups) {
		heads[u] = int64(len(s.inbox[u]))
	}
	out, fresh := assign(recs, found, heads, groups)
	for _, i := range fresh {
		sv := &out[i]
		m := &memMsg{rec: sv.Record, receiverSeq: sv.ReceiverSeq, senderSeq: sv.SenderSeq}
		snd, rcv := m.rec.Msg.SenderID, m.rec.Msg.ReceiverID
		if gid := m.rec.Msg.GroupID; gid != "" {
			for _, ms := range sv.Members {
				s.inbox[ms.User] = append(s.inbox[ms.User], memRow{msg: m, peer: gid})
			}
		} else {
			s.inbox[rcv] = append(s.inbox[rcv], memRow{msg: m, peer: snd})
			if snd != rcv {
				s.inbox[snd] = append(s.inbox[snd], memRow{msg: m, peer: rcv})
			}
		}
		s.byID[m.rec.Msg.MsgID] = m
		if m.rec.Msg.ClientMsgID != "" {
			s.byClient[clientKey{snd, m.rec.Msg.ClientMsgID}] = m
		}
	}
	for i := range out {
		out[i].Msg.Extra = cloneExtra(out[i].Msg.Extra)
	}
	return out, nil
}

// findLocked returns the stored message r duplicates, by msgId, then by clientMsgId.
func (s *Memory) findLocked(r *message.Record) *memMsg {
	if m, ok := s.byID[r.Msg.MsgID]; ok {
		return m
	}
	if r.Msg.ClientMsgID != "" {
		return s.byClient[clientKey{r.Msg.SenderID, r.Msg.ClientMsgID}]
	}
	return nil
}

// Replay implements [Store.Replay].
func (s *Memory) Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	rows := s.inbox[userID]
	if afterSeq < 0 {
		afterSeq = 0
	}
	var out []message.Entry
	for i := afterSeq; i < int64(len(rows)) && len(out) < limit; i++ {
		out = append(out, rows[i].entry(i+1))
	}
	return out, nil
}

// LastSeq implements [Store.LastSeq].
func (s *Memory) LastSeq(ctx context.Context, userID string) (int64, error) {
	return lastSeqOf(ctx, s, userID)
}

// LastSeqs implements [Store.LastSeqs].
func (s *Memory) LastSeqs(ctx context.Context, users []string) ([]int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make([]int64, len(users))
	for i, u := range users {
		out[i] = int64(len(s.inbox[u]))
	}
	return out, nil
}

// History implements [Store.History].
func (s *Memory) History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	return s.history(userID, beforeSeq, limit, func(r memRow) bool {
		return peerID == "" || r.peer == peerID && r.msg.rec.Msg.GroupID == ""
	})
}

// GroupHistory implements [Store.GroupHistory].
func (s *Memory) GroupHistory(ctx context.Context, userID, groupID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	return s.history(userID, beforeSeq, limit, func(r memRow) bool { return r.msg.rec.Msg.GroupID == groupID })
}

// history returns userID's rows that match, newest first.
func (s *Memory) history(userID string, beforeSeq int64, limit int, match func(memRow) bool) ([]message.Entry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	rows := s.inbox[userID]
	end := int64(len(rows)) // seqs < end+1
	if beforeSeq > 0 && beforeSeq-1 < end {
		end = beforeSeq - 1
	}
	var out []message.Entry
	for i := end - 1; i >= 0 && len(out) < limit; i-- {
		if match(rows[i]) {
			out = append(out, rows[i].entry(i+1))
		}
	}
	return out, nil
}

// Close implements [Store.Close]; the data is dropped. It is idempotent.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.byID, s.byClient, s.inbox, s.groups = nil, nil, nil, nil
	return nil
}

// PutGroup implements [Store.PutGroup].
func (s *Memory) PutGroup(ctx context.Context, groupID string, members []string) ([]string, error) {
	members, err := normalizeMembers(groupID, members)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.groups[groupID] = members
	return slices.Clone(members), nil
}

// Group implements [Store.Group].
func (s *Memory) Group(ctx context.Context, groupID string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	members, ok := s.groups[groupID]
	if !ok {
		return nil, message.ErrUnknownGroup
	}
	return slices.Clone(members), nil
}

// UpdateGroup implements [Store.UpdateGroup].
func (s *Memory) UpdateGroup(ctx context.Context, groupID string, add, remove []string, maxMembers int) ([]string, error) {
	add, err := normalizeMembers(groupID, add)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	members, ok := s.groups[groupID]
	if !ok {
		return nil, message.ErrUnknownGroup
	}
	members, err = applyChange(members, add, remove, maxMembers)
	if err != nil {
		return nil, err
	}
	s.groups[groupID] = members
	return slices.Clone(members), nil
}

// DeleteGroup implements [Store.DeleteGroup].
func (s *Memory) DeleteGroup(ctx context.Context, groupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.groups[groupID]; !ok {
		return message.ErrUnknownGroup
	}
	delete(s.groups, groupID)
	return nil
}

func (r memRow) entry(seq int64) message.Entry {
	msg := r.msg.rec.Msg
	msg.Seq = seq
	msg.Extra = cloneExtra(msg.Extra)
	return message.Entry{Seq: seq, Msg: msg, SenderConn: r.msg.rec.SenderConn}
}

// normalizeRecord is r as every Store keeps it: chatTime at millisecond precision in UTC,
// Extra copied (nil when empty), Seq cleared.
func normalizeRecord(r *message.Record) message.Record {
	out := *r
	out.Msg.ChatTime = fromMillis(toMillis(r.Msg.ChatTime))
	out.Msg.Extra = cloneExtra(r.Msg.Extra)
	out.Msg.Seq = 0
	return out
}

// duplicateOf is the Saved answer to resend r of the stored message first.
func duplicateOf(first message.Record, resend *message.Record, receiverSeq, senderSeq int64) message.Saved {
	// The same msgId again is the same record delivered again (a saver that died after
	// its commit, a fan-out that timed out): it must be pushed again. Only a client's
	// resend under another msgId is delivered to nobody.
	out := message.Saved{Record: first, ReceiverSeq: receiverSeq, SenderSeq: senderSeq, Duplicate: first.Msg.MsgID != resend.Msg.MsgID}
	out.Msg.Extra = cloneExtra(first.Msg.Extra)
	out.SenderConn = resend.SenderConn
	out.Node = resend.Node
	return out
}
