// Package storetest is the conformance suite every [saver.Store] must pass.
//
// An implementation's test calls [Run] with a function that opens a fresh, empty store:
//
//	func TestSQLite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) saver.Store {
//			s, err := saver.OpenSQLite(ctx, saver.SQLiteConfig{Path: filepath.Join(t.TempDir(), "db")})
//			if err != nil { t.Fatal(err) }
//			return s
//		})
//	}
//
// Every subtest opens its own store and closes it when it ends (Close must be idempotent,
// so open may register its own cleanup too).
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) saver.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"SeqsGapFreePerUser", testSeqsGapFree},
		{"BothInboxes", testBothInboxes},
		{"Idempotency", testIdempotency},
		{"Replay", testReplay},
		{"LastSeq", testLastSeq},
		{"LastSeqs", testLastSeqs},
		{"History", testHistory},
		{"ContentPreserved", testContentPreserved},
		{"ConcurrentSave", testConcurrentSave},
		{"ConcurrentResend", testConcurrentResend},
		{"InvalidBatchPersistsNothing", testInvalidBatch},
		{"InvalidLimit", testInvalidLimit},
		{"CanceledContext", testCanceledContext},
		{"EmptyBatch", testEmptyBatch},
		{"Closed", testClosed},
		{"GroupMembership", testGroupMembership},
		{"GroupMessages", testGroupMessages},
		{"GroupForbidden", testGroupForbidden},
		{"GroupHistory", testGroupHistory},
		{"GroupConcurrentOrder", testGroupConcurrentOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, &fixture{s: s})
		})
	}
}

// baseTime is the chatTime of the first message; each message adds a millisecond.
var baseTime = time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)

// msgIDs makes ids unique across subtests, so a store reused by mistake shows up.
var msgIDs atomic.Int64

func init() { msgIDs.Store(7392012345678900000) }

// fixture holds one subtest's store.
type fixture struct {
	s saver.Store
}

// rec builds a Record from sender to receiver with a fresh msgId.
func rec(sender, receiver, text, clientMsgID string) message.Record {
	id := msgIDs.Add(1)
	return message.Record{
		Msg: codec.ChatMsg{
			SenderID:    sender,
			ReceiverID:  receiver,
			Msg:         text,
			MsgType:     codec.Words,
			MsgID:       id,
			ClientMsgID: clientMsgID,
			ChatTime:    baseTime.Add(time.Duration(id%100000) * time.Millisecond),
		},
		SenderConn: 1000 + uint64(len(sender)),
		Node:       "im-0000000001",
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func (f *fixture) save(t *testing.T, recs ...message.Record) []message.Saved {
	t.Helper()
	out, err := f.s.Save(ctx(t), recs)
	if err != nil {
		t.Fatalf("Save(%d records): %v", len(recs), err)
	}
	if len(out) != len(recs) {
		t.Fatalf("Save(%d records) returned %d", len(recs), len(out))
	}
	return out
}

func (f *fixture) replay(t *testing.T, user string, after int64, limit int) []message.Entry {
	t.Helper()
	out, err := f.s.Replay(ctx(t), user, after, limit)
	if err != nil {
		t.Fatalf("Replay(%q, %d, %d): %v", user, after, limit, err)
	}
	return out
}

func (f *fixture) lastSeq(t *testing.T, user string) int64 {
	t.Helper()
	n, err := f.s.LastSeq(ctx(t), user)
	if err != nil {
		t.Fatalf("LastSeq(%q): %v", user, err)
	}
	return n
}

func (f *fixture) history(t *testing.T, user, peer string, before int64, limit int) []message.Entry {
	t.Helper()
	out, err := f.s.History(ctx(t), user, peer, before, limit)
	if err != nil {
		t.Fatalf("History(%q, %q, %d, %d): %v", user, peer, before, limit, err)
	}
	return out
}

// seqs returns the seqs of entries, checking Msg.Seq == Seq on the way.
func seqs(t *testing.T, es []message.Entry) []int64 {
	t.Helper()
	out := make([]int64, len(es))
	for i, e := range es {
		if e.Msg.Seq != e.Seq {
			t.Errorf("entry seq %d has Msg.Seq %d", e.Seq, e.Msg.Seq)
		}
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameMsg compares the stored fields of two messages (Seq excluded).
func sameMsg(a, b codec.ChatMsg) error {
	switch {
	case a.MsgID != b.MsgID:
		return fmt.Errorf("msgId %d != %d", a.MsgID, b.MsgID)
	case a.SenderID != b.SenderID || a.ReceiverID != b.ReceiverID:
		return fmt.Errorf("sender/receiver %q/%q != %q/%q", a.SenderID, a.ReceiverID, b.SenderID, b.ReceiverID)
	case a.Msg != b.Msg:
		return fmt.Errorf("msg %q != %q", a.Msg, b.Msg)
	case a.MsgType != b.MsgType:
		return fmt.Errorf("msgType %d != %d", a.MsgType, b.MsgType)
	case a.ClientMsgID != b.ClientMsgID:
		return fmt.Errorf("clientMsgId %q != %q", a.ClientMsgID, b.ClientMsgID)
	case !a.ChatTime.Equal(b.ChatTime):
		return fmt.Errorf("chatTime %v != %v", a.ChatTime, b.ChatTime)
	case !bytes.Equal(a.Extra, b.Extra):
		return fmt.Errorf("extra %q != %q", a.Extra, b.Extra)
	}
	return nil
}
