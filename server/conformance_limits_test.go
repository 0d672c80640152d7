package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/server"
)

// TestConformanceLimits covers the size limit (decided from frame headers, before
// any payload is buffered: 1009), binary messages (1003) and unmasked client frames
// (1002), before and after CONNECT_INIT.
func TestConformanceLimits(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{
		"":      startNode(t, server.Config{}, nil), // 64 KiB
		"small": startNode(t, server.Config{MaxMessageBytes: 1000}, nil),
	}
	const limit = 64 << 10
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	// Only headers are sent: a server that waited for the payload would never answer.
	add(both(confCase{name: "9.1 header of a 1 MiB text frame, no payload", send: []chunk{one(headerOnly(true, ws.OpText, 1<<20))}, want: []want{closed(1009)}})...)
	add(both(confCase{name: "9.1 header of a limit+1 text frame, no payload", send: []chunk{one(headerOnly(true, ws.OpText, limit+1))}, want: []want{closed(1009)}})...)
	add(both(confCase{name: "9.1 header of a 2^63-1 byte text frame", send: []chunk{one(headerOnly(true, ws.OpText, 1<<63-1))}, want: []want{closed(1009)}})...)
	add(both(confCase{name: "9.1 header of a 1 MiB first fragment", send: []chunk{one(headerOnly(false, ws.OpText, 1<<20))}, want: []want{closed(1009)}})...)
	add(both(confCase{
		name: "9.1 header of a limit+1 frame before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(headerOnly(true, ws.OpText, limit+1))},
		want: []want{closed(1009)},
	})...)
	add(both(confCase{
		name: "9.1 64-bit length with the most significant bit set",
		send: []chunk{one([]byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "9.1 configured limit of 1000 bytes: 1001-byte header", node: "small",
		send: []chunk{one(headerOnly(true, ws.OpText, 1001))},
		want: []want{closed(1009)},
	})...)
	add(both(confCase{
		name: "9.1 configured limit of 1000 bytes: 1000 bytes accepted", node: "small",
		send: []chunk{one(txt(keepalive(1000)))},
		want: []want{answer(9)},
	})...)

	// Fragmented messages: the total counts, decided at the header of the fragment that
	// goes over.
	first := strings.Repeat("x", 40000)
	add(both(confCase{
		name: "9.2 2 fragments of 40000 bytes, the second one's header only",
		send: []chunk{one(frag(false, ws.OpText, first), headerOnly(true, ws.OpContinuation, 40000))},
		want: []want{closed(1009)},
	})...)
	var many [][]byte
	many = append(many, frag(false, ws.OpText, strings.Repeat("y", 1000)))
	for range 70 {
		many = append(many, frag(false, ws.OpContinuation, strings.Repeat("y", 1000)))
	}
	add(confCase{
		name: "9.2 71 fragments of 1000 bytes",
		send: []chunk{one(many...)},
		want: []want{closed(1009)},
	})
	atLimit := keepalive(limit)
	add(both(confCase{
		name: "9.2 2 fragments totalling exactly the limit",
		send: []chunk{one(fragments(atLimit[:limit/2], atLimit[limit/2:]))},
		want: []want{answer(9)},
	})...)
	add(confCase{
		name: "9.2 pings between fragments do not count toward the limit",
		send: []chunk{one(frag(false, ws.OpText, atLimit[:limit/2]), pingF(make([]byte, 125)), frag(true, ws.OpContinuation, atLimit[limit/2:]))},
		want: []want{pong(make([]byte, 125)), answer(9)},
	})

	// Binary messages: 1003, as soon as the first header says binary.
	add(both(confCase{name: "binary message", send: []chunk{one(frameBytes(true, 0, ws.OpBinary, []byte(ka), true))}, want: []want{closed(1003)}})...)
	add(both(confCase{name: "empty binary message", send: []chunk{one(frameBytes(true, 0, ws.OpBinary, nil, true))}, want: []want{closed(1003)}})...)
	add(both(confCase{name: "binary header only, payload withheld", send: []chunk{one(headerOnly(true, ws.OpBinary, 100))}, want: []want{closed(1003)}})...)
	add(both(confCase{name: "binary after a KEEPALIVE", send: []chunk{one(txt(ka), frameBytes(true, 0, ws.OpBinary, []byte{1}, true), txt(ka))}, want: []want{answer(9), closed(1003)}})...)
	add(both(confCase{
		name: "binary before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(frameBytes(true, 0, ws.OpBinary, []byte(initMsg("bin")), true))},
		want: []want{closed(1003)},
	})...)

	// Unmasked client frames: 1002.
	for _, v := range []struct {
		name string
		op   ws.OpCode
		p    string
	}{
		{"unmasked text", ws.OpText, ka},
		{"unmasked ping", ws.OpPing, "p"},
		{"unmasked pong", ws.OpPong, "p"},
		{"unmasked close", ws.OpClose, "\x03\xe8"},
		{"unmasked binary", ws.OpBinary, "b"},
	} {
		add(both(confCase{name: v.name, send: []chunk{one(frameBytes(true, 0, v.op, []byte(v.p), false))}, want: []want{closed(1002)}})...)
	}
	add(both(confCase{
		name: "unmasked continuation",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), frameBytes(true, 0, ws.OpContinuation, []byte(ka[10:]), false))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "unmasked text before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(frameBytes(true, 0, ws.OpText, []byte(initMsg("unmasked")), false))},
		want: []want{closed(1002)},
	})...)
	runConformance(t, nodes, cases)
}

// TestConformanceImgateCodes covers imgate's own close codes of the frame layer: 4400
// when the first message is not a valid CONNECT_INIT, 4408 when it does not come in time
// or the client goes idle (PROTOCOL §2 and §4).
func TestConformanceImgateCodes(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{
		"": startNode(t, server.Config{}, nil),
		"timeouts": startNode(t, server.Config{
			InitTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond, TickInterval: 50 * time.Millisecond,
		}, nil),
	}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }
	for _, v := range []struct{ name, first string }{
		{"KEEPALIVE", ka},
		{"WORDS", words("w", "x", "hi")},
		{"SIGNED", `{"chatMsg":{"senderId":"s","receiverId":"x","msgType":8,"msgId":"1"}}`},
		{"not JSON", "hello"},
		{"empty text", ""},
		{"JSON array", "[]"},
		{"no chatMsg", `{"token":"t"}`},
		{"CONNECT_INIT without senderId", `{"chatMsg":{"msgType":0}}`},
		{"CONNECT_INIT with an empty senderId", `{"chatMsg":{"senderId":"","msgType":0}}`},
		{"CONNECT_INIT with a 129-byte senderId", initMsg(strings.Repeat("u", 129))},
		{"CONNECT_INIT with a negative cursor", `{"chatMsg":{"senderId":"neg","msgType":0},"cursor":-1}`},
	} {
		add(both(confCase{
			name: "4400 first message is " + v.name, phase: phaseUpgraded,
			send: []chunk{one(txt(v.first))},
			want: []want{closed(4400)},
		})...)
	}
	add(both(confCase{
		name: "4400 even when the first message is fragmented", phase: phaseUpgraded,
		send: []chunk{one(fragments(ka[:10], ka[10:]))},
		want: []want{closed(4400)},
	})...)
	add(both(confCase{
		name: "4400 then nothing: frames after the bad init are ignored", phase: phaseUpgraded,
		send: []chunk{one(txt(ka), pingF([]byte("late")), txt(initMsg("late")))},
		want: []want{closed(4400)},
	})...)
	add(confCase{
		name: "CONNECT_INIT with a 128-byte senderId is accepted", phase: phaseUpgraded,
		send: []chunk{one(txt(initMsg(strings.Repeat("u", 128))))},
		want: []want{answer(11)},
	})

	add(confCase{
		name: "4408 no CONNECT_INIT within the init timeout", phase: phaseUpgraded, node: "timeouts",
		want: []want{closedAfter(4408, 250*time.Millisecond)},
	})
	add(confCase{
		name: "4408 pings do not replace CONNECT_INIT", phase: phaseUpgraded, node: "timeouts",
		send: []chunk{one(pingF([]byte("1")))},
		want: []want{pong([]byte("1")), closed(4408)},
	})
	add(confCase{
		name: "no upgrade request within the init timeout: TCP closed", phase: phaseTCP, node: "timeouts",
		want: []want{tcpClosed()},
	})
	add(confCase{
		name: "half an upgrade request within the init timeout: TCP closed", phase: phaseTCP, node: "timeouts",
		send: []chunk{one(upgradeReq("/ws")[:40])},
		want: []want{tcpClosed()},
	})
	add(confCase{
		name: "4408 idle after CONNECT_INIT", node: "timeouts",
		want: []want{closedAfter(4408, 550*time.Millisecond)},
	})
	add(confCase{
		name: "4408 idle after a KEEPALIVE", node: "timeouts",
		send: []chunk{one(txt(ka))},
		want: []want{answer(9), closedAfter(4408, 550*time.Millisecond)},
	})
	add(confCase{
		name: "4408 idle in the middle of a fragmented message", node: "timeouts",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]))},
		want: []want{closedAfter(4408, 550*time.Millisecond)},
	})
	runConformance(t, nodes, cases)
}
