package server_test

import (
	"strconv"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/server"
)

// TestReplayIsNeverOvertakenByLive: bob has 3,000 messages waiting; he connects with
// cursor 0 while alice keeps sending him more. The seqs his connection receives only
// increase (PROTOCOL §5): live messages wait behind the replay and its ACK, none is
// missing, none comes twice. Without the hold, live seqs overtook the replay.
func TestReplayIsNeverOvertakenByLive(t *testing.T) {
	inbox := newMemInbox()
	const stored, live = 3000, 300
	recs := make([]message.Record, stored)
	for i := range recs {
		recs[i] = message.Record{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: "old " + strconv.Itoa(i),
			MsgType: codec.Words, MsgID: int64(1 + i), ChatTime: time.Now().UTC()}, Node: "elsewhere"}
	}
	inbox.save(recs)
	n := startNode(t, server.Config{ReplayPage: 64}, inbox)
	alice, _ := login(t, n.addr, "alice", -1)

	bob := dialWS(t, n.addr)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range live {
			alice.send("alice", "bob", "live "+strconv.Itoa(i), "l-"+strconv.Itoa(i))
		}
	}()
	bob.sendJSON(map[string]any{"cursor": 0, "chatMsg": map[string]any{"senderId": "bob", "msgType": 0}})
	<-sent
	var last int64
	acked := false
	// Until both: when every live message was saved before the replay read the newest
	// seq, the replay covers them all and the ACK comes last.
	for last < stored+live || !acked {
		e := bob.readEnvelope(10 * time.Second)
		switch {
		case e.msgType() == 11:
			acked = true
			if e.seq() < last {
				t.Fatalf("init ACK seq %d after seq %d", e.seq(), last)
			}
		case e.msgType() == 1:
			if e.seq() != last+1 {
				t.Fatalf("seq %d after %d (acked %v): the seqs of a connection must only increase, without holes", e.seq(), last, acked)
			}
			last = e.seq()
		}
	}
	if !acked {
		t.Fatal("no init ACK")
	}
}

// TestCursorAheadIsAnsweredWithTheNewestSeq: a cursor above the inbox head (2^63-1) is
// not echoed: the ACK carries the real newest seq and cursorAhead (PROTOCOL §5).
func TestCursorAheadIsAnsweredWithTheNewestSeq(t *testing.T) {
	inbox := newMemInbox()
	inbox.save([]message.Record{{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: "one",
		MsgType: codec.Words, MsgID: 1, ChatTime: time.Now().UTC()}, Node: "elsewhere"}})
	n := startNode(t, server.Config{}, inbox)
	_, ack := login(t, n.addr, "bob", 1<<63-1)
	if ack.seq() != 1 {
		t.Fatalf("init ACK seq %d, want the newest seq 1", ack.seq())
	}
	if ack.CursorAhead == nil || !*ack.CursorAhead {
		t.Fatalf("init ACK %v: want cursorAhead true", ack)
	}
	_, ack = login(t, n.addr, "bob", 1)
	if ack.CursorAhead != nil {
		t.Fatalf("init ACK %v for a cursor at the head: want no cursorAhead", ack)
	}
}
