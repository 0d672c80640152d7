package server_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"imgate/server"
)

// TestConformanceClose covers Autobahn 7.x: a close frame is answered with a close
// frame carrying the client's code (an empty one when the client sent none) and the TCP
// connection is then closed; nothing sent after the close is acted on; malformed close
// payloads and codes a client may not send are protocol errors.
func TestConformanceClose(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{}, nil)}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	add(both(confCase{name: "7.1.1 close without payload", send: []chunk{one(frameBytes(true, 0, ws.OpClose, nil, true))}, want: []want{closedEmpty()}})...)
	add(both(confCase{name: "7.1.2 close 1000 without reason", send: []chunk{one(closeF(1000, ""))}, want: []want{closed(1000)}})...)
	add(both(confCase{name: "7.1.3 close 1000 with a reason", send: []chunk{one(closeF(1000, "done for today"))}, want: []want{closed(1000)}})...)
	add(both(confCase{
		name: "7.1.4 KEEPALIVE after close is ignored",
		send: []chunk{one(closeF(1000, ""), txt(ka))},
		want: []want{closed(1000)},
	})...)
	add(both(confCase{
		name: "7.1.5 ping after close is ignored",
		send: []chunk{one(closeF(1000, ""), pingF([]byte("late")))},
		want: []want{closed(1000)},
	})...)
	add(both(confCase{
		name: "7.1.6 second close is ignored",
		send: []chunk{one(closeF(1000, "first"), closeF(1001, "second"))},
		want: []want{closed(1000)},
	})...)
	add(confCase{
		name: "7.1.7 KEEPALIVE, close, KEEPALIVE",
		send: []chunk{one(txt(ka), closeF(1000, ""), txt(ka))},
		want: []want{answer(9), closed(1000)},
	})
	add(confCase{
		name: "7.1.8 invalid frame after close is ignored",
		send: []chunk{one(closeF(1000, ""), frameBytes(true, 0, 5, nil, true))},
		want: []want{closed(1000)},
	})
	add(both(confCase{
		name: "close before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(closeF(1001, "leaving"))},
		want: []want{closed(1001)},
	})...)

	add(both(confCase{name: "7.3.1 1-byte close payload", send: []chunk{one(frameBytes(true, 0, ws.OpClose, []byte{0x03}, true))}, want: []want{closed(1002)}})...)
	maxReason := strings.Repeat("r", 123)
	add(both(confCase{name: "7.3.2 close with a 123-byte reason (125-byte payload)", send: []chunk{one(closeF(1000, maxReason))}, want: []want{closed(1000)}})...)
	add(both(confCase{name: "7.3.3 close with a 124-byte reason (126-byte payload)", send: []chunk{one(closeF(1000, maxReason+"r"))}, want: []want{closed(1002)}})...)
	add(confCase{name: "7.3.4 close header announcing 126 bytes, no payload", send: []chunk{one(headerOnly(true, ws.OpClose, 126))}, want: []want{closed(1002)}})
	add(both(confCase{
		name: "7.3.5 fragmented close",
		send: []chunk{one(frameBytes(false, 0, ws.OpClose, []byte{0x03, 0xe8}, true), frameBytes(true, 0, ws.OpContinuation, nil, true))},
		want: []want{closed(1002)},
	})...)

	// 7.7: codes a client may send are echoed.
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		add(both(confCase{
			name: "7.7 valid code " + strconv.Itoa(int(code)),
			send: []chunk{one(closeF(code, "code "+strconv.Itoa(int(code))))},
			want: []want{closed(ws.StatusCode(code))},
		})...)
	}
	// 7.9: codes that are never valid on the wire (unused, reserved, "no status",
	// "abnormal", "TLS", unassigned in the RFC range, out of range).
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(both(confCase{
			name: "7.9 invalid code " + strconv.Itoa(int(code)),
			send: []chunk{one(closeF(code, ""))},
			want: []want{closed(1002)},
		})...)
	}
	add(confCase{
		name: "7.9 invalid code with a reason",
		send: []chunk{one(frameBytes(true, 0, ws.OpClose, append([]byte{0x03, 0xed}, bytes.Repeat([]byte("x"), 20)...), true))},
		want: []want{closed(1002)},
	})
	runConformance(t, nodes, cases)
}
