package server_test

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"imgate/server"
)

// rawReq is an HTTP request head made of lines (CRLF added, the blank line too).
func rawReq(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

// TestConformanceHandshake covers the upgrade (RFC 6455 §4.2, PROTOCOL §1): the HTTP
// status of every refusal, read before any frame, and the 101 that never negotiates an
// extension or a subprotocol.
func TestConformanceHandshake(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{AllowedOrigins: []string{"http://example.com"}}, nil)}
	const (
		host    = "Host: 127.0.0.1"
		upg     = "Upgrade: websocket"
		conn    = "Connection: Upgrade"
		key     = "Sec-WebSocket-Key: " + confKey
		version = "Sec-WebSocket-Version: 13"
		get     = "GET /ws HTTP/1.1"
	)
	refused := func(status int, headers ...string) []want {
		return []want{httpStatus(status, append(headers, "Connection: close")...), tcpClosed()}
	}
	var cases []confCase
	add := func(name string, req []byte, w []want) {
		cases = append(cases, confCase{name: name, phase: phaseTCP, send: []chunk{one(req)}, want: w})
	}
	accepted := func(name string, req []byte) {
		cases = append(cases, both(confCase{
			name: name, phase: phaseTCP,
			send: []chunk{one(req, txt(initMsg("hs")), txt(ka))},
			want: []want{switched(), answer(11), answer(9)},
		})...)
	}

	accepted("101 plain upgrade", upgradeReq("/ws"))
	accepted("101 with a query string", upgradeReq("/ws?token=abc&v=2"))
	accepted("101 permessage-deflate offered, not negotiated", upgradeReq("/ws",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
	accepted("101 subprotocol offered, none selected", upgradeReq("/ws", "Sec-WebSocket-Protocol: chat, superchat"))
	accepted("101 Connection: keep-alive, Upgrade", rawReq(get, host, upg, "Connection: keep-alive, Upgrade", key, version))
	accepted("101 header names in any case", rawReq(get, "host: 127.0.0.1", "UPGRADE: WebSocket", "connection: upgrade",
		"sec-websocket-key: "+confKey, "sec-websocket-version: 13"))
	accepted("101 with an allowed Origin", upgradeReq("/ws", "Origin: http://example.com"))
	add("403 Origin not allowed (PROTOCOL §7)", upgradeReq("/ws", "Origin: http://example.org"), refused(403))
	add("400 bare-LF line ends, at once", []byte("GET /ws HTTP/1.1\nHost: x\n\n"), refused(400))

	cases = append(cases, both(confCase{
		name: "101 then 1002: an unmasked frame in the same write as the request", phase: phaseTCP,
		send: []chunk{one(upgradeReq("/ws"), frameBytes(true, 0, ws.OpText, []byte(initMsg("hs")), false))},
		want: []want{switched(), closed(1002)},
	})...)
	cases = append(cases, both(confCase{
		name: "101 then 1009: a 1 MiB header in the same write as the request", phase: phaseTCP,
		send: []chunk{one(upgradeReq("/ws"), headerOnly(true, ws.OpText, 1<<20))},
		want: []want{switched(), closed(1009)},
	})...)
	add("404 with frames in the same write: frames ignored", append(upgradeReq("/chat"), txt(initMsg("hs"))...), refused(404))

	add("404 wrong path", upgradeReq("/chat"), refused(404))
	add("404 root path", upgradeReq("/"), refused(404))
	add("404 path with a suffix", upgradeReq("/wsx"), refused(404))
	add("405 POST", rawReq("POST /ws HTTP/1.1", host, upg, conn, key, version), refused(405, "Allow: GET"))
	add("426 version 8", rawReq(get, host, upg, conn, key, "Sec-WebSocket-Version: 8"), refused(426, "Sec-WebSocket-Version: 13"))
	add("426 no version", rawReq(get, host, upg, conn, key), refused(426, "Sec-WebSocket-Version: 13"))
	add("400 no key", rawReq(get, host, upg, conn, version), refused(400))
	add("400 key of 15 bytes", rawReq(get, host, upg, conn, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA", version), refused(400))
	add("400 no Upgrade header", rawReq(get, host, conn, key, version), refused(400))
	add("400 Upgrade: h2c", rawReq(get, host, "Upgrade: h2c", conn, key, version), refused(400))
	add("400 no Connection header", rawReq(get, host, upg, key, version), refused(400))
	add("400 no Host", rawReq(get, upg, conn, key, version), refused(400))
	add("400 HTTP/1.0", rawReq("GET /ws HTTP/1.0", host, upg, conn, key, version), refused(400))
	add("400 malformed request line", rawReq("GET/ws HTTP/1.1", host, upg, conn, key, version), refused(400))
	add("400 TLS client hello", append([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01}, rawReq("")...), refused(400))
	add("431 request head over 8 KiB", upgradeReq("/ws", "X-Pad: "+strings.Repeat("p", 9000)), refused(431))
	runConformance(t, nodes, cases)
}
