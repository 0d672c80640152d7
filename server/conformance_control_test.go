package server_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/server"
)

// TestConformancePingPong covers Autobahn 2.x: pings are answered with the same
// payload, unsolicited pongs are ignored, oversized or fragmented control frames are
// protocol errors, and pings keep the idle timer from firing.
func TestConformancePingPong(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{
		"":     startNode(t, server.Config{}, nil),
		"idle": startNode(t, server.Config{IdleTimeout: 500 * time.Millisecond, TickInterval: 50 * time.Millisecond}, nil),
	}
	p125 := bytes.Repeat([]byte("*"), 125)
	bin := []byte{0x00, 0xff, 0xfe, 0x80, 0xc0, 0xed, 0xa0, 0x80, 0x01}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	add(both(confCase{name: "2.1 ping without payload", send: []chunk{one(pingF(nil))}, want: []want{pong([]byte{})}})...)
	add(both(confCase{name: "2.2 ping with a text payload", send: []chunk{one(pingF([]byte("Hello, world!")))}, want: []want{pong([]byte("Hello, world!"))}})...)
	add(both(confCase{name: "2.3 ping with a binary payload", send: []chunk{one(pingF(bin))}, want: []want{pong(bin)}})...)
	add(both(confCase{name: "2.4 ping with 125 bytes", send: []chunk{one(pingF(p125))}, want: []want{pong(p125)}})...)
	add(both(confCase{
		name: "2.5 ping with 126 bytes",
		send: []chunk{one(frameBytes(true, 0, ws.OpPing, bytes.Repeat([]byte("*"), 126), true))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "2.6 ping then KEEPALIVE",
		send: []chunk{one(pingF([]byte("p")), txt(ka))},
		want: []want{pong([]byte("p")), answer(9)},
	})...)
	add(both(confCase{
		name: "2.7 unsolicited pong ignored",
		send: []chunk{one(pongF(nil), pongF(p125), txt(ka))},
		want: []want{answer(9)},
	})...)
	add(both(confCase{
		name: "2.8 unsolicited pong with a payload, then ping",
		send: []chunk{one(pongF([]byte("unsolicited")), pingF([]byte("solicited")))},
		want: []want{pong([]byte("solicited"))},
	})...)
	ten := make([][]byte, 10)
	tenPongs := make([]want, 10)
	for i := range ten {
		p := []byte("ping-" + strconv.Itoa(i))
		ten[i], tenPongs[i] = pingF(p), pong(p)
	}
	add(both(confCase{name: "2.10 ten pings in one write", send: []chunk{one(ten...)}, want: tenPongs})...)
	add(both(confCase{
		name: "fragmented ping",
		send: []chunk{one(frameBytes(false, 0, ws.OpPing, []byte("a"), true), frameBytes(true, 0, ws.OpContinuation, []byte("b"), true))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "fragmented pong",
		send: []chunk{one(frameBytes(false, 0, ws.OpPong, []byte("a"), true))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "pong with 126 bytes",
		send: []chunk{one(frameBytes(true, 0, ws.OpPong, bytes.Repeat([]byte("*"), 126), true))},
		want: []want{closed(1002)},
	})...)
	add(confCase{
		name: "ping decided from the header: 126-byte ping header only",
		send: []chunk{one(headerOnly(true, ws.OpPing, 126))},
		want: []want{closed(1002)},
	})
	add(confCase{
		name: "ping before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(pingF([]byte("early")), txt(initMsg("early-pinger")))},
		want: []want{pong([]byte("early")), answer(11)},
	})

	// Pings count as client activity (PROTOCOL §2): a 500 ms idle timer never fires while
	// a ping comes every 150 ms, for 1.2 s.
	var paced []chunk
	var pacedWants []want
	for i := range 8 {
		p := []byte("alive-" + strconv.Itoa(i))
		paced = append(paced, chunk{b: pingF(p), pause: 150 * time.Millisecond})
		pacedWants = append(pacedWants, pong(p))
	}
	add(confCase{
		name: "pings keep the idle timer from firing", node: "idle",
		send: paced, want: append(pacedWants, answer(9)),
	})
	cases[len(cases)-1].send = append(cases[len(cases)-1].send, one(txt(ka)))

	runConformance(t, nodes, cases)
}

// TestConformanceReservedBits covers Autobahn 3.x: a frame with any RSV bit set is a
// protocol error (no extension is negotiated), whatever its opcode, and the frames sent
// before it are still answered.
func TestConformanceReservedBits(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{}, nil)}
	var cases []confCase
	for rsv := byte(1); rsv <= 7; rsv++ {
		r := "RSV=" + strconv.Itoa(int(rsv))
		cases = append(cases, both(confCase{
			name: r + " on text",
			send: []chunk{one(frameBytes(true, rsv, ws.OpText, []byte(ka), true))},
			want: []want{closed(1002)},
		})...)
	}
	for _, tc := range []struct {
		name string
		rsv  byte
		op   ws.OpCode
		fin  bool
	}{
		{"RSV1 on ping", 4, ws.OpPing, true},
		{"RSV2 on ping", 2, ws.OpPing, true},
		{"RSV3 on ping", 1, ws.OpPing, true},
		{"RSV1 on pong", 4, ws.OpPong, true},
		{"RSV3 on close", 1, ws.OpClose, true},
		{"RSV2 on binary", 2, ws.OpBinary, true},
		{"RSV1 on a first fragment", 4, ws.OpText, false},
	} {
		cases = append(cases, both(confCase{
			name: tc.name,
			send: []chunk{one(frameBytes(tc.fin, tc.rsv, tc.op, nil, true))},
			want: []want{closed(1002)},
		})...)
	}
	cases = append(cases, both(confCase{
		name: "3.2 KEEPALIVE, then text with RSV2, then ping",
		send: []chunk{one(txt(ka), frameBytes(true, 2, ws.OpText, []byte(ka), true), pingF([]byte("never")))},
		want: []want{answer(9), closed(1002)},
	})...)
	cases = append(cases, both(confCase{
		name: "RSV1 on a continuation",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), frameBytes(true, 4, ws.OpContinuation, []byte(ka[10:]), true))},
		want: []want{closed(1002)},
	})...)
	runConformance(t, nodes, cases)
}

// TestConformanceOpcodes covers Autobahn 4.x: reserved data opcodes 3-7 and reserved
// control opcodes 0xB-0xF are protocol errors, with or without a payload, after a valid
// message too.
func TestConformanceOpcodes(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{}, nil)}
	var cases []confCase
	for _, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		o := "opcode " + strconv.Itoa(int(op))
		cases = append(cases, both(confCase{
			name: o,
			send: []chunk{one(frameBytes(true, 0, op, nil, true))},
			want: []want{closed(1002)},
		})...)
		cases = append(cases, confCase{
			name: o + " with a payload after a KEEPALIVE, then ping",
			send: []chunk{one(txt(ka), frameBytes(true, 0, op, []byte("reserved"), true), pingF([]byte("never")))},
			want: []want{answer(9), closed(1002)},
		})
	}
	cases = append(cases, confCase{
		name: "reserved opcode inside a fragmented message",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), frameBytes(true, 0, 3, nil, true))},
		want: []want{closed(1002)},
	})
	runConformance(t, nodes, cases)
}
