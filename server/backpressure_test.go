package server_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/codec"
	"imgate/message"
	"imgate/server"
)

// inbox stores n messages from alice to bob with a body of size bytes.
func inbox(t *testing.T, n, size int) *memInbox {
	t.Helper()
	st := newMemInbox()
	body := strings.Repeat("x", size)
	for i := 0; i < n; i += 500 {
		recs := make([]message.Record, 0, 500)
		for j := 0; j < 500 && i+j < n; j++ {
			recs = append(recs, message.Record{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: body,
				MsgType: codec.Words, MsgID: int64(1000 + i + j), ClientMsgID: fmt.Sprint("c", i+j),
				ChatTime: time.Now().UTC().Truncate(time.Millisecond)}, SenderConn: 1, Node: "x"})
		}
		st.save(recs)
	}
	return st
}

// readReplay reads bob's replay until the ACK of CONNECT_INIT and returns how many
// messages came before it.
func readReplay(t *testing.T, c *rawClient, n *testNode, want int) {
	t.Helper()
	got := 0
	for {
		f, err := c.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d replayed: %v; stats %+v", got, want, err, n.srv.Stats())
		}
		if f.op == ws.OpClose {
			t.Fatalf("closed after %d of %d replayed: %q; stats %+v", got, want, f.payload, n.srv.Stats())
		}
		if strings.Contains(string(f.payload), `"msgType":11`) {
			if got != want {
				t.Fatalf("ACK after %d replayed, want %d", got, want)
			}
			return
		}
		got++
	}
}

// TestManyFramesInOneDrain: more than 1024 frames for one connection in one drain are
// written in several writevs (Linux refuses more than 1024 iovecs in one).
func TestManyFramesInOneDrain(t *testing.T) {
	n := startNode(t, server.Config{EventLoops: 1}, nil)
	bob, _ := login(t, n.addr, "bob", -1)
	batch := make([]message.Saved, 1500)
	for i := range batch {
		batch[i] = message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: "hi",
			MsgType: codec.Words, MsgID: int64(100 + i), ChatTime: time.Now().UTC()}, SenderConn: 1, Node: "other"}}
	}
	n.srv.Saved(batch)
	for got := range len(batch) {
		if _, err := bob.readFrame(5 * time.Second); err != nil {
			t.Fatalf("bob got %d of %d, then %v; stats %+v", got, len(batch), err, n.srv.Stats())
		}
	}
}

// TestLongReplaySmallMessages: a replay of thousands of small messages reaches a
// normal reader whole, followed by the ACK.
func TestLongReplaySmallMessages(t *testing.T) {
	const total = 6000
	n := startNode(t, server.Config{EventLoops: 1}, inbox(t, total, 2))
	c := dialWS(t, n.addr)
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "bob", "msgType": 0}, "cursor": 0})
	readReplay(t, c, n, total)
}

// TestLongReplaySlowReader: a reader that starts late still gets its whole replay: the
// replay waits for the connection's backlog instead of tripping the 4503 close.
func TestLongReplaySlowReader(t *testing.T) {
	const total = 8000
	n := startNode(t, server.Config{EventLoops: 1}, inbox(t, total, 1000))
	c := dialRaw(t, n.addr)
	// Not smaller: below loopback's 64 KiB MSS, TCP's silly-window avoidance stalls the
	// transfer for hundreds of milliseconds per window.
	_ = c.nc.(*net.TCPConn).SetReadBuffer(256 << 10)
	c.upgrade("/ws")
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "bob", "msgType": 0}, "cursor": 0})
	// The slow reader: it starts reading half a second late (a pause that is the
	// scenario, not a wait for a condition). The memory store could hand the whole inbox
	// over in that time; the replay must hold back instead of tripping 4503.
	time.Sleep(500 * time.Millisecond)
	readReplay(t, c, n, total)
	if st := n.srv.Stats(); st.Closes["slow_consumer"] != 0 {
		t.Fatalf("closed a replaying reader as slow: %+v", st)
	}
}

// TestReplyFloodClosed: a client that sends garbage and never reads is closed (4503 or
// 4429) instead of making the node buffer its ERROR answers without bound.
func TestReplyFloodClosed(t *testing.T) {
	n := startNode(t, server.Config{EventLoops: 1}, nil)
	c := dialRaw(t, n.addr)
	_ = c.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	c.upgrade("/ws")
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "bob", "msgType": 0}})
	c.expectType(11)
	one := frameBytes(true, 0, ws.OpText, []byte("{"), true)
	batch := make([]byte, 0, len(one)*10000)
	for range 10000 {
		batch = append(batch, one...)
	}
	for i := 0; i < 60 && n.srv.Stats().Closes["slow_consumer"] == 0; i++ {
		_ = c.nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.nc.Write(batch); err != nil {
			break // the server closed the connection
		}
	}
	waitFor(t, 10*time.Second, "the flooding client to be closed", func() bool {
		return n.srv.Stats().Closes["slow_consumer"] == 1
	})
}

// TestInvalidTextRefused: a NUL byte (valid JSON, refused by the stores) is answered
// bad_request at the node, so it never fails a save batch.
func TestInvalidTextRefused(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "nul-a", -1)
	a.sendText(`{"chatMsg":{"senderId":"nul-a","receiverId":"b","msg":"x\u0000y","msgType":1,"clientMsgId":"n1"}}`)
	if e := a.expectType(12); e.Error == nil || e.Error.Code != "bad_request" {
		t.Fatalf("want bad_request, got %+v", e)
	}
	c := dialWS(t, n.addr)
	c.sendText(`{"chatMsg":{"senderId":"bad\u0000user","msgType":0}}`)
	c.expectClose(4400)
}

// TestReplayLargeMessagesPagedByBytes: 20 messages of 60 KB (1.2 MB, over the 1 MiB
// bound) replayed from cursor 0 to a reader that reads as fast as it can arrive whole,
// then the ACK, without a close: the replay pushes only what fits under half the bound.
// Pushing a whole page at once closed the reader with 4503 after about 17.
func TestReplayLargeMessagesPagedByBytes(t *testing.T) {
	const total = 20
	n := startNode(t, server.Config{EventLoops: 1}, inbox(t, total, 60_000))
	c := dialWS(t, n.addr)
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "bob", "msgType": 0}, "cursor": 0})
	readReplay(t, c, n, total)
	if st := n.srv.Stats(); st.Closes["slow_consumer"] != 0 || st.Closes["try_later"] != 0 {
		t.Fatalf("closed a replaying reader: %+v", st)
	}
}

// TestReplayFrameOverTheBoundClosed1013: a stored message whose frame is larger than
// the whole outbound bound (accepted under a larger --max-message-bytes) cannot be
// replayed: the connection is closed with 1013 (try again later), never 4503.
func TestReplayFrameOverTheBoundClosed1013(t *testing.T) {
	n := startNode(t, server.Config{EventLoops: 1, MaxMessageBytes: 1024, MaxOutboundBytes: 1024}, inbox(t, 1, 2000))
	c := dialWS(t, n.addr)
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "bob", "msgType": 0}, "cursor": 0})
	c.expectClose(1013)
	if st := n.srv.Stats(); st.Closes["slow_consumer"] != 0 {
		t.Fatalf("closed with 4503: %+v", st)
	}
}
