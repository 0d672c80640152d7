package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/server"
)

func TestChatMultiDeviceAckAndSync(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	alice1, _ := login(t, n.addr, "alice", -1)
	alice2, _ := login(t, n.addr, "alice", -1)
	bob, _ := login(t, n.addr, "bob", -1)

	alice1.sendText(`{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hi 😀","msgType":1,"clientMsgId":"a-1","media":{"w":640,"h":[1,2]}},"extend":"x"}`)
	ack := alice1.expectType(11)
	if ack.str("clientMsgId") != "a-1" || ack.str("msgId") == "" || ack.str("chatTime") == "" {
		t.Fatalf("ack: %+v", ack)
	}
	got := bob.expectType(1)
	if got.str("msgId") != ack.str("msgId") || got.str("msg") != "hi 😀" || got.seq() != 1 {
		t.Fatalf("bob got %+v, ack %+v", got, ack)
	}
	media, ok := got.ChatMsg["media"].(map[string]any)
	if !ok || media["w"].(float64) != 640 {
		t.Fatalf("unknown chatMsg field not kept: %+v", got.ChatMsg)
	}
	if got.Extend == "" || got.Extend == "x" {
		t.Fatalf("extend should be the sender connection id, got %q", got.Extend)
	}
	sync := alice2.expectType(1)
	if sync.str("msgId") != ack.str("msgId") || sync.seq() != 1 {
		t.Fatalf("alice2 got %+v", sync)
	}
	// The sender's own device gets nothing but the ACK: the next thing it reads is
	// the answer to a keepalive.
	alice1.sendJSON(map[string]any{"chatMsg": map[string]any{"msgType": 9}})
	alice1.expectType(9)
}

func TestChatErrors(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	c, _ := login(t, n.addr, "carol", -1)
	cases := []struct {
		name, send, code string
	}{
		{"bad json", `{"chatMsg":`, "bad_json"},
		{"bad type", `{"chatMsg":{"senderId":"carol","receiverId":"x","msg":"m","msgType":77,"clientMsgId":"e1"}}`, "bad_type"},
		{"missing receiver", `{"chatMsg":{"senderId":"carol","msg":"m","msgType":1,"clientMsgId":"e2"}}`, "bad_request"},
		{"forbidden", `{"chatMsg":{"senderId":"mallory","receiverId":"x","msg":"m","msgType":1,"clientMsgId":"e3"}}`, "forbidden"},
		{"second init", `{"chatMsg":{"senderId":"carol","msgType":0}}`, "bad_request"},
		{"unbounded number in an unknown member", `{"chatMsg":{"senderId":"carol","receiverId":"x","msg":"m","msgType":1,"clientMsgId":"e4","n":` + strings.Repeat("9", 5000) + `}}`, "bad_request"},
		{"deep unknown member", `{"chatMsg":{"senderId":"carol","receiverId":"x","msg":"m","msgType":1,"clientMsgId":"e5","d":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}}`, "bad_request"},
		{"NUL escape in an unknown member", `{"chatMsg":{"senderId":"carol","receiverId":"x","msg":"m","msgType":1,"clientMsgId":"e6","s":"a\u0000"}}`, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.sendText(tc.send)
			e := c.expectType(12)
			if e.Error == nil || e.Error.Code != tc.code {
				t.Fatalf("got %+v want code %s", e, tc.code)
			}
		})
	}
	// The connection stays open after ERRORs.
	c.sendJSON(map[string]any{"chatMsg": map[string]any{"msgType": 9}})
	c.expectType(9)
}

func TestIdempotentResend(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "a", -1)
	b, _ := login(t, n.addr, "b", -1)
	a.send("a", "b", "once", "c-1")
	first := a.expectType(11)
	b.expectType(1)
	a.send("a", "b", "once", "c-1")
	second := a.expectType(11)
	if first.str("msgId") != second.str("msgId") {
		t.Fatalf("resend got msgId %s, first %s", second.str("msgId"), first.str("msgId"))
	}
	a.send("a", "b", "twice", "c-2")
	a.expectType(11)
	if got := b.expectType(1); got.str("msg") != "twice" {
		t.Fatalf("b got the duplicate again: %+v", got)
	}
}

// TestTokenInChatMsgNeverStoredOrForwarded: a token alice puts inside chatMsg is dropped
// (PROTOCOL §7): bob's delivery, the stored copy and bob's replay have none; the
// message and its other unknown members go through.
func TestTokenInChatMsgNeverStoredOrForwarded(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	inbox := newMemInbox()
	n := startNode(t, server.Config{}, inbox)
	alice, _ := login(t, n.addr, "alice", -1)
	bob, _ := login(t, n.addr, "bob", -1)
	alice.sendText(`{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"clientMsgId":"t-1","token":"` + jwt + `","Token":"` + jwt + `","w":640}}`)
	alice.expectType(11)
	check := func(where string, e envelope) {
		t.Helper()
		if e.str("msg") != "hi" || e.ChatMsg["w"] != float64(640) {
			t.Fatalf("%s: %+v", where, e.ChatMsg)
		}
		for k, v := range e.ChatMsg {
			if strings.EqualFold(k, "token") || v == jwt {
				t.Fatalf("%s carries the token: %+v", where, e.ChatMsg)
			}
		}
	}
	check("bob's delivery", bob.expectType(1))
	if stored, _ := inbox.Replay(context.Background(), "bob", 0, 10); len(stored) != 1 || strings.Contains(string(stored[0].Msg.Extra), jwt) {
		t.Fatalf("stored: %+v", stored)
	}
	bob2, _ := login(t, n.addr, "bob", 0)
	if len(bob2.replayed) != 1 {
		t.Fatalf("replayed %d messages, want 1", len(bob2.replayed))
	}
	check("bob's replay", bob2.replayed[0])
}

func TestReplayFromCursor(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "ann", -1)
	for i := range 5 {
		a.send("ann", "ben", "m"+strconv.Itoa(i), "r-"+strconv.Itoa(i))
		a.expectType(11)
	}
	ben, ack := login(t, n.addr, "ben", 2)
	if ack.seq() != 5 {
		t.Fatalf("init ack seq %d, want 5", ack.seq())
	}
	if len(ben.replayed) != 3 {
		t.Fatalf("replayed %d messages, want 3: %+v", len(ben.replayed), ben.replayed)
	}
	for i, e := range ben.replayed {
		if e.seq() != int64(3+i) || e.str("msg") != "m"+strconv.Itoa(2+i) {
			t.Fatalf("replay %d: %+v", i, e)
		}
	}
	// No cursor: no replay, the ACK still tells the newest seq.
	_, ack = login(t, n.addr, "ben", -1)
	if ack.seq() != 5 {
		t.Fatalf("ack seq %d", ack.seq())
	}
}

func TestSignedReceipt(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "sa", -1)
	b, _ := login(t, n.addr, "sb", -1)
	a.send("sa", "sb", "read me", "s-1")
	ack := a.expectType(11)
	b.expectType(1)
	b.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "sb", "receiverId": "sa", "msgType": 8, "msgId": ack.str("msgId")}})
	r := a.expectType(8)
	if r.str("msgId") != ack.str("msgId") || r.str("senderId") != "sb" {
		t.Fatalf("receipt %+v", r)
	}
}

// TestSignedReceiptCarriesOnlyItsFields: a SIGNED with msg and unknown members reaches
// the original sender (and the signer's other device) with only the receipt's fields
// (issue 10 item 9).
func TestSignedReceiptCarriesOnlyItsFields(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "ra", -1)
	b, _ := login(t, n.addr, "rb", -1)
	b2, _ := login(t, n.addr, "rb", -1)
	b.sendJSON(map[string]any{"chatMsg": map[string]any{
		"senderId": "rb", "receiverId": "ra", "msgType": 8, "msgId": "12345", "clientMsgId": "r-1",
		"msg": "click http://evil.example", "seq": 7, "chatTime": "2000-01-01T00:00:00.000Z",
		"evil": map[string]any{"nested": []any{1, 2, 3}}, "w": 640,
	}})
	want := map[string]bool{"senderId": true, "receiverId": true, "msgType": true, "msgId": true, "clientMsgId": true, "chatTime": true}
	for name, c := range map[string]*rawClient{"original sender": a, "signer's other device": b2} {
		r := c.expectType(8)
		for k := range r.ChatMsg {
			if !want[k] {
				t.Errorf("%s: receipt carries %q: %+v", name, k, r.ChatMsg)
			}
		}
		if r.str("msgId") != "12345" || r.str("senderId") != "rb" || r.str("receiverId") != "ra" || r.str("clientMsgId") != "r-1" ||
			r.str("chatTime") == "2000-01-01T00:00:00.000Z" {
			t.Errorf("%s: receipt %+v", name, r.ChatMsg)
		}
	}
}

// TestSignedReceiptKind: msg "delivered" or "read" (exactly) is the receipt's kind and
// goes on; any other msg is dropped (docs/protocol.md, SIGNED).
func TestSignedReceiptKind(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	a, _ := login(t, n.addr, "ka", -1)
	b, _ := login(t, n.addr, "kb", -1)
	for _, tc := range []struct{ sent, want string }{
		{server.ReceiptDelivered, "delivered"}, {server.ReceiptRead, "read"}, {"READ", ""}, {"read ", ""}, {"", ""},
	} {
		b.sendJSON(map[string]any{"chatMsg": map[string]any{
			"senderId": "kb", "receiverId": "ka", "msgType": 8, "msgId": "777", "msg": tc.sent,
		}})
		if r := a.expectType(8); r.str("msg") != tc.want {
			t.Errorf("receipt with msg %q arrived with msg %q, want %q", tc.sent, r.str("msg"), tc.want)
		}
	}
}

func TestInitAndIdleTimeouts(t *testing.T) {
	n := startNode(t, server.Config{InitTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond, TickInterval: 50 * time.Millisecond}, nil)
	c := dialWS(t, n.addr)
	c.expectClose(4408)
	idle, _ := login(t, n.addr, "idler", -1)
	idle.expectClose(4408)
}

func TestBadInitClosed4400(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	for _, first := range []string{
		`not json`,
		`{"chatMsg":{"senderId":"x","receiverId":"y","msg":"m","msgType":1}}`,
		`{"chatMsg":{"msgType":0}}`,
	} {
		c := dialWS(t, n.addr)
		c.sendText(first)
		c.expectClose(4400)
	}
}

func TestSlowConsumerClosed4503(t *testing.T) {
	n := startNode(t, server.Config{MaxOutboundBytes: 64 << 10, MaxMessageBytes: 4 << 10}, nil)
	slow, _ := login(t, n.addr, "slow", -1)
	if tc, ok := slow.nc.(interface{ SetReadBuffer(int) error }); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fast, _ := login(t, n.addr, "fast", -1)
	big := make([]byte, 3000)
	for i := range big {
		big[i] = 'x'
	}
	// Flood until the server closes the slow receiver; the sender reads its ACKs so
	// only the receiver is slow.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := fast.readFrame(10 * time.Second); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	closed := false
	for i := 0; !closed && time.Now().Before(deadline); i++ {
		fast.send("fast", "slow", string(big), "f-"+strconv.Itoa(i))
		if i%200 == 199 {
			closed = n.srv.Stats().Closes["slow_consumer"] > 0
		}
	}
	if !closed {
		t.Fatalf("slow consumer was not closed: %+v", n.srv.Stats())
	}
	_ = fast.nc.Close()
	<-done
	// The slow client finds a 4503 close after the frames that were queued.
	for {
		f, err := slow.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.op == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.payload)
			if code != 4503 {
				t.Fatalf("close code %d", code)
			}
			return
		}
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	c, _ := login(t, n.addr, "d", -1)
	n.stop(t)
	c.expectClose(1001)
}

// The init ACK always carries the newest seq (PROTOCOL §5), 0 for an empty inbox: a
// client reading chatMsg.seq gets 0, not nothing.
func TestInitAckCarriesSeqZero(t *testing.T) {
	for _, inbox := range []*memInbox{nil, newMemInbox()} {
		n := startNode(t, server.Config{}, inbox)
		_, ack := login(t, n.addr, "nobody-yet", 0)
		if v, ok := ack.ChatMsg["seq"]; !ok || v != float64(0) {
			t.Fatalf("store %v: init ACK %v, want seq 0", inbox != nil, ack.ChatMsg)
		}
	}
}
