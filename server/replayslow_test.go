package server_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/server"
)

// slowInboxes stores per messages of size bytes for each of users, and one message for
// "quick".
func slowInboxes(users []string, per, size int) *memInbox {
	st := newMemInbox()
	body := strings.Repeat("x", size)
	id := int64(1000)
	rec := func(to string) message.Record {
		id++
		return message.Record{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: to, Msg: body, MsgType: codec.Words,
			MsgID: id, ClientMsgID: fmt.Sprint("c", id), ChatTime: time.Now().UTC().Truncate(time.Millisecond)}, SenderConn: 1, Node: "x"}
	}
	for _, u := range users {
		recs := make([]message.Record, 0, per)
		for range per {
			recs = append(recs, rec(u))
		}
		st.save(recs)
	}
	st.save([]message.Record{rec("quick")})
	return st
}

// connectNoRead sends a CONNECT_INIT with cursor 0 for user on a connection with a small
// receive buffer that is never read.
func connectNoRead(t *testing.T, addr, user string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	_ = c.nc.(*net.TCPConn).SetReadBuffer(4096)
	c.upgrade("/ws")
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}, "cursor": 0})
	return c
}

// waitReplayed polls the node until at least want frames were replayed.
func waitReplayed(t *testing.T, n *testNode, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.Stats().Replayed < want {
		if time.Now().After(deadline) {
			t.Fatalf("replayed %d frames, want at least %d; stats %+v", n.srv.Stats().Replayed, want, n.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowReplaysDoNotStarveWorkers: more clients than replay workers, each with a large
// inbox and never reading, do not delay another CONNECT_INIT: its ACK comes while they
// are still stuck (issue 10 item 4; before, each held a worker for up to 30 s).
func TestSlowReplaysDoNotStarveWorkers(t *testing.T) {
	users := []string{"slow0", "slow1", "slow2", "slow3", "slow4", "slow5"}
	const per = 5000
	n := startNode(t, server.Config{MaxOutboundBytes: 64 << 10, ReplayWorkers: 4}, slowInboxes(users, per, 2000))
	for _, u := range users {
		connectNoRead(t, n.addr, u)
	}
	// Every slow replay has pushed its first frames and is waiting for a backlog that
	// never drains.
	waitReplayed(t, n, int64(len(users)))
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	quick := dialWS(t, n.addr)
	quick.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "quick", "msgType": 0}, "cursor": 0})
	if e := quick.readEnvelope(5 * time.Second); e.msgType() != 1 {
		t.Fatalf("want the replayed message first, got %+v", e.ChatMsg)
	}
	if e := quick.readEnvelope(5 * time.Second); e.msgType() != 11 || e.seq() != 1 {
		t.Fatalf("want the ACK with seq 1, got %+v", e.ChatMsg)
	}
	st := n.srv.Stats()
	if st.Replayed >= int64(len(users)*per) || st.Closes["try_again_later"] != 0 {
		t.Fatalf("the slow replays should still be stuck and open: %+v", st)
	}
	t.Logf("quick ACK after %v with %d slow replays stuck", time.Since(start), len(users))
}

// TestSlowReplayPoolFullCloses1013: a replay that must wait when the slow pool is full
// is closed with 1013 (try again later) instead of holding a worker.
func TestSlowReplayPoolFullCloses1013(t *testing.T) {
	users := []string{"slow0", "slow1", "slow2"}
	n := startNode(t, server.Config{MaxOutboundBytes: 64 << 10, SlowReplays: 2}, slowInboxes(users, 5000, 2000))
	for _, u := range users {
		connectNoRead(t, n.addr, u)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.Stats().Closes["try_again_later"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("want one 1013 close; stats %+v", n.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The quick user is still served (login waits for its ACK).
	login(t, n.addr, "quick", -1)
	if got := n.srv.Stats().Closes["try_again_later"]; got != 1 {
		t.Fatalf("1013 closes %d, want 1", got)
	}
}
