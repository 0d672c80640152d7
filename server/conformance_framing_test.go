package server_test

import (
	"strconv"
	"strings"
	"testing"

	"imgate/server"
)

// bigLimit is the message limit of the nodes that take 64-bit length frames.
const bigLimit = 200 << 10

// TestConformanceFraming covers Autobahn 1.x (text messages of every length encoding)
// and the byte streams that trip event-loop servers: frames chopped one byte per write,
// many frames in one write, and the upgrade request split anywhere or followed by frames
// in the same write.
func TestConformanceFraming(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{
		"":    startNode(t, server.Config{}, nil),
		"big": startNode(t, server.Config{MaxMessageBytes: bigLimit}, nil),
	}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	// 1.1: text messages of the lengths at the edges of the 7-, 16- and 64-bit encodings.
	add(both(confCase{name: "text 0 bytes", send: []chunk{one(txt(""))}, want: []want{errorReply("bad_json")}})...)
	for _, n := range []int{125, 126, 127, 128, 1000, 65535, 65536} {
		add(both(confCase{
			name: "text " + strconv.Itoa(n) + " bytes",
			send: []chunk{one(txt(keepalive(n)))},
			want: []want{answer(9)},
		})...)
	}
	add(both(confCase{
		name: "text 70000 bytes in a 64-bit length frame", node: "big",
		send: []chunk{one(txt(keepalive(70000)))},
		want: []want{answer(9)},
	})...)
	// A content message over 64 KiB on a node configured for it: ACK and delivery intact.
	long := strings.Repeat("0123456789", 7000)
	for _, chop := range []bool{false, true} {
		sfx := strconv.FormatBool(chop)
		add(confCase{
			name: "WORDS of 70000 bytes delivered chopped=" + sfx, node: "big",
			user: "big-from-" + sfx, peer: "big-to-" + sfx,
			send: []chunk{{b: txt(words("big-from-"+sfx, "big-to-"+sfx, long)), chopped: chop}},
			want: []want{answer(11), delivered(long)},
		})
	}

	// Many frames in one write: each must be answered, not only the first one of a read.
	add(both(confCase{
		name: "3 KEEPALIVEs in one write",
		send: []chunk{one(txt(ka), txt(ka), txt(ka))},
		want: []want{answer(9), answer(9), answer(9)},
	})...)
	hundred := make([][]byte, 100)
	hundredWants := make([]want, 100)
	for i := range hundred {
		hundred[i] = txt(ka)
		hundredWants[i] = answer(9)
	}
	add(confCase{name: "100 KEEPALIVEs in one write", send: []chunk{one(hundred...)}, want: hundredWants})
	add(both(confCase{
		name: "ping, KEEPALIVE, ping in one write",
		send: []chunk{one(pingF([]byte("a")), txt(ka), pingF([]byte("b")))},
		want: []want{pong([]byte("a")), answer(9), pong([]byte("b"))},
	})...)

	// A frame split in two writes at every position of its header and along its payload,
	// the second write also carrying a whole frame.
	f := txt(ka)
	for k := 1; k < len(f); k++ {
		if k > 8 && k%8 != 0 {
			continue
		}
		add(confCase{
			name: "KEEPALIVE split at byte " + strconv.Itoa(k),
			send: []chunk{{b: f[:k]}, one(f[k:], txt(ka))},
			want: []want{answer(9), answer(9)},
		})
	}

	// The upgrade request and the first frames in one write; the request split anywhere.
	add(both(confCase{
		name: "handshake and CONNECT_INIT in one write", phase: phaseTCP,
		send: []chunk{one(upgradeReq("/ws"), txt(initMsg("hs-one")))},
		want: []want{switched(), answer(11)},
	})...)
	add(both(confCase{
		name: "handshake, CONNECT_INIT and 2 KEEPALIVEs in one write", phase: phaseTCP,
		send: []chunk{one(upgradeReq("/ws"), txt(initMsg("hs-many")), txt(ka), txt(ka))},
		want: []want{switched(), answer(11), answer(9), answer(9)},
	})...)
	req := upgradeReq("/ws")
	for k := 1; k < len(req); k += 7 {
		add(confCase{
			name: "handshake split at byte " + strconv.Itoa(k), phase: phaseTCP,
			send: []chunk{{b: req[:k]}, one(req[k:], txt(initMsg("hs-split")))},
			want: []want{switched(), answer(11)},
		})
	}

	runConformance(t, nodes, cases)
}
