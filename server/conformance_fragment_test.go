package server_test

import (
	"testing"

	"github.com/gobwas/ws"

	"imgate/server"
)

// fragments splits s into a fragmented text message, one fragment per part.
func fragments(parts ...string) []byte {
	var out []byte
	for i, p := range parts {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		out = append(out, frag(i == len(parts)-1, op, p)...)
	}
	return out
}

// bytewise splits s into one-byte parts.
func bytewise(s string) []string {
	parts := make([]string, len(s))
	for i := 0; i < len(s); i++ { // bytes, not runes
		parts[i] = s[i : i+1]
	}
	return parts
}

// TestConformanceFragmentation covers Autobahn 5.x: a fragmented text message is one
// message; control frames may come between its fragments; continuation frames need a
// started message and a started message takes only continuations.
func TestConformanceFragmentation(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{}, nil)}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	add(both(confCase{name: "5.1 text in 2 fragments", send: []chunk{one(fragments(ka[:12], ka[12:]))}, want: []want{answer(9)}})...)
	add(both(confCase{name: "5.2 text in 2 fragments, 2 writes", send: []chunk{one(frag(false, ws.OpText, ka[:12])), one(frag(true, ws.OpContinuation, ka[12:]))}, want: []want{answer(9)}})...)
	add(both(confCase{name: "5.3 text in one fragment per byte", send: []chunk{one(fragments(bytewise(ka)...))}, want: []want{answer(9)}})...)
	add(both(confCase{name: "5.4 empty first and last fragments", send: []chunk{one(fragments("", ka, ""))}, want: []want{answer(9)}})...)
	add(both(confCase{name: "5.5 a single fragment with FIN then nothing", send: []chunk{one(fragments(ka))}, want: []want{answer(9)}})...)
	add(both(confCase{
		name: "5.6 ping between fragments",
		send: []chunk{one(frag(false, ws.OpText, ka[:12]), pingF([]byte("between")), frag(true, ws.OpContinuation, ka[12:]))},
		want: []want{pong([]byte("between")), answer(9)},
	})...)
	add(both(confCase{
		name: "5.7 pong between fragments",
		send: []chunk{one(frag(false, ws.OpText, ka[:12]), pongF([]byte("unsolicited")), frag(true, ws.OpContinuation, ka[12:]))},
		want: []want{answer(9)},
	})...)
	add(both(confCase{
		name: "5.8 ping between every fragment",
		send: []chunk{one(
			frag(false, ws.OpText, ka[:5]), pingF([]byte("1")),
			frag(false, ws.OpContinuation, ka[5:20]), pingF([]byte("2")),
			frag(true, ws.OpContinuation, ka[20:]),
		)},
		want: []want{pong([]byte("1")), pong([]byte("2")), answer(9)},
	})...)
	add(both(confCase{
		name: "5.9 two fragmented messages in one write",
		send: []chunk{one(fragments(ka[:3], ka[3:]), fragments(ka[:30], ka[30:]))},
		want: []want{answer(9), answer(9)},
	})...)
	add(both(confCase{
		name: "5.10 continuation without start, FIN",
		send: []chunk{one(frag(true, ws.OpContinuation, ka))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "5.11 continuation without start, no FIN",
		send: []chunk{one(frag(false, ws.OpContinuation, ka[:10]), frag(true, ws.OpContinuation, ka[10:]))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "5.12 continuation after a complete message",
		send: []chunk{one(txt(ka), frag(true, ws.OpContinuation, ka))},
		want: []want{answer(9), closed(1002)},
	})...)
	add(both(confCase{
		name: "5.13 new text frame inside a fragmented message",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), txt(ka))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "5.14 new first fragment inside a fragmented message",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), frag(false, ws.OpText, ka[10:]))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "5.15 binary frame inside a fragmented text message",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), frameBytes(true, 0, ws.OpBinary, []byte(ka[10:]), true))},
		want: []want{closed(1002)},
	})...)
	add(both(confCase{
		name: "5.16 close between fragments",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), closeF(1000, "bye"), frag(true, ws.OpContinuation, ka[10:]))},
		want: []want{closed(1000)},
	})...)
	add(both(confCase{
		name: "5.17 fragmented binary message",
		send: []chunk{one(frameBytes(false, 0, ws.OpBinary, []byte{1, 2}, true), frameBytes(true, 0, ws.OpContinuation, []byte{3}, true))},
		want: []want{closed(1003)},
	})...)
	add(both(confCase{
		name: "5.18 fragmented CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(fragments(bytewise(initMsg("frag-init"))...))},
		want: []want{answer(11)},
	})...)
	add(confCase{
		name: "5.19 the last fragment withheld: no answer until it comes",
		send: []chunk{one(frag(false, ws.OpText, ka[:10]), pingF([]byte("still waiting"))), one(frag(true, ws.OpContinuation, ka[10:]))},
		want: []want{pong([]byte("still waiting")), answer(9)},
	})
	runConformance(t, nodes, cases)
}
