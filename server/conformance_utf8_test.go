package server_test

import (
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"imgate/server"
)

// withBytes is a KEEPALIVE envelope carrying raw bytes b inside a string field.
func withBytes(b string) string {
	return `{"chatMsg":{"msgType":9,"x":"κόσμε` + b + `edited"}}`
}

// partial is the first k payload bytes of a masked text frame (FIN set) whose payload
// is p: the rest of the frame is never sent.
func partial(op ws.OpCode, fin bool, p string, k int) []byte {
	f := frameBytes(fin, 0, op, []byte(p), true)
	hdr := len(f) - len(p)
	return f[:hdr+k]
}

// TestConformanceUTF8 covers Autobahn 6.x: text messages must be valid UTF-8 (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), checked across fragment
// boundaries and as bytes arrive: the server closes with 1007 at the first byte that
// can never become valid, without waiting for the rest of the frame or message.
func TestConformanceUTF8(t *testing.T) {
	t.Parallel()
	nodes := map[string]*testNode{"": startNode(t, server.Config{}, nil)}
	var cases []confCase
	add := func(cs ...confCase) { cases = append(cases, cs...) }

	// Valid multi-byte text is delivered intact, however it is cut.
	const text = "héllo 😀 你好 𝄞 ﷽ \U0010FFFF \uFFFF end"
	for _, v := range []struct {
		name string
		cut  func(s string) chunk
	}{
		{"one frame", func(s string) chunk { return one(txt(s)) }},
		{"one frame chopped", func(s string) chunk { return chopped(txt(s)) }},
		{"a fragment per byte (code points split across fragments)", func(s string) chunk { return one(fragments(bytewise(s)...)) }},
		{"a fragment per byte, chopped", func(s string) chunk { return chopped(fragments(bytewise(s)...)) }},
	} {
		from, to := "utf8-from-"+strconv.Itoa(len(cases)), "utf8-to-"+strconv.Itoa(len(cases))
		add(confCase{
			name: "6.1 emoji and CJK delivered intact: " + v.name,
			user: from, peer: to,
			send: []chunk{v.cut(words(from, to, text))},
			want: []want{answer(11), delivered(text)},
		})
	}
	emoji := withBytes("\xf0\x9f\x98\x80")
	at := len(`{"chatMsg":{"msgType":9,"x":"κόσμε`) + 2 // inside the emoji
	add(both(confCase{
		name: "6.2 a 4-byte code point split across 2 fragments",
		send: []chunk{one(fragments(emoji[:at], emoji[at:]))},
		want: []want{answer(9)},
	})...)
	for _, v := range []struct{ name, b string }{
		{"U+007F", "\x7f"},
		{"U+0080", "\xc2\x80"},
		{"U+07FF", "\xdf\xbf"},
		{"U+0800", "\xe0\xa0\x80"},
		{"U+D7FF (below the surrogates)", "\xed\x9f\xbf"},
		{"U+E000 (above the surrogates)", "\xee\x80\x80"},
		{"U+FFFE noncharacter", "\xef\xbf\xbe"},
		{"U+10000", "\xf0\x90\x80\x80"},
		{"U+10FFFF", "\xf4\x8f\xbf\xbf"},
	} {
		add(confCase{name: "6.3 valid boundary " + v.name, send: []chunk{one(txt(withBytes(v.b)))}, want: []want{answer(9)}})
	}

	// Invalid sequences in one frame: 1007.
	for _, v := range []struct{ name, b string }{
		{"lone continuation byte", "\x80"},
		{"0xFE", "\xfe"},
		{"0xFF", "\xff"},
		{"overlong 2 bytes (C0 AF)", "\xc0\xaf"},
		{"overlong 2 bytes (C1 BF)", "\xc1\xbf"},
		{"overlong 3 bytes (E0 80 AF)", "\xe0\x80\xaf"},
		{"overlong 4 bytes (F0 80 80 AF)", "\xf0\x80\x80\xaf"},
		{"5-byte form (F8 88 80 80 AF)", "\xf8\x88\x80\x80\xaf"},
		{"6-byte form (FC 84 80 80 80 AF)", "\xfc\x84\x80\x80\x80\xaf"},
		{"high surrogate U+D800 (ED A0 80)", "\xed\xa0\x80"},
		{"low surrogate U+DFFF (ED BF BF)", "\xed\xbf\xbf"},
		{"surrogate pair (ED A0 80 ED B0 80)", "\xed\xa0\x80\xed\xb0\x80"},
		{"above U+10FFFF (F4 90 80 80)", "\xf4\x90\x80\x80"},
		{"F5 lead byte", "\xf5\x80\x80\x80"},
		{"lead byte then ASCII (C2 41)", "\xc2A"},
		{"3-byte lead then ASCII (E2 82 41)", "\xe2\x82A"},
	} {
		add(both(confCase{name: "6.4 invalid: " + v.name, send: []chunk{one(txt(withBytes(v.b)))}, want: []want{closed(1007)}})...)
	}
	add(both(confCase{
		name: "6.5 truncated sequence at the end of the message",
		send: []chunk{one(txt(`{"chatMsg":{"msgType":9}}` + "\xe2\x82"))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "6.5 truncated sequence at the end of the last fragment",
		send: []chunk{one(fragments(`{"chatMsg":{"msgType":9}}`, "\xf0\x9f\x98"))},
		want: []want{closed(1007)},
	})...)
	bad := withBytes("\xe2\x82A")
	cut := len(`{"chatMsg":{"msgType":9,"x":"κόσμε`) + 2 // after E2 82
	add(both(confCase{
		name: "6.6 invalid across a fragment boundary",
		send: []chunk{one(fragments(bad[:cut], bad[cut:]))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "6.6 invalid, a fragment per byte",
		send: []chunk{one(fragments(bytewise(withBytes("\xed\xa0\x80"))...))},
		want: []want{closed(1007)},
	})...)

	// Fail fast: the server does not wait for the rest of the message or frame.
	add(both(confCase{
		name: "6.7 invalid first fragment (FIN=0), rest never sent",
		send: []chunk{one(frag(false, ws.OpText, `{"chatMsg":`+"\xff"))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "6.7 first fragment ends with an impossible pair (E0 80), rest never sent",
		send: []chunk{one(frag(false, ws.OpText, `{"chatMsg":`+"\xe0\x80"))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "6.7 invalid second fragment, rest never sent",
		send: []chunk{one(frag(false, ws.OpText, `{"chatMsg":`), frag(false, ws.OpContinuation, `{"x":"`+"\xc0\xaf"))},
		want: []want{closed(1007)},
	})...)
	long := withBytes("\xff") + string(make([]byte, 200))
	add(both(confCase{
		name: "6.8 first half of a frame holding 0xFF, rest withheld",
		send: []chunk{one(partial(ws.OpText, true, long, len(long)/2))},
		want: []want{closed(1007)},
	})...)
	surr := withBytes("\xed\xa0\x80") + string(make([]byte, 200))
	surrAt := len(`{"chatMsg":{"msgType":9,"x":"κόσμε`) + 2 // ends with ED A0: already impossible
	add(both(confCase{
		name: "6.8 partial frame ending inside a surrogate (ED A0), rest withheld",
		send: []chunk{one(partial(ws.OpText, true, surr, surrAt))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "6.8 partial continuation frame holding 0xFF, rest withheld",
		send: []chunk{one(frag(false, ws.OpText, `{"chatMsg":`), partial(ws.OpContinuation, true, long, len(long)/2))},
		want: []want{closed(1007)},
	})...)
	ef := frameBytes(true, 0, ws.OpText, []byte(emoji), true)
	eh := len(ef) - len(emoji)
	add(both(confCase{
		name: "6.8 partial frame ending inside a valid code point, completed later",
		send: []chunk{one(ef[:eh+at]), one(ef[eh+at:])},
		want: []want{answer(9)},
	})...)

	// Close reasons and the pre-init state.
	add(both(confCase{name: "6.9 invalid UTF-8 in a close reason", send: []chunk{one(closeF(1000, "bye\xff"))}, want: []want{closed(1007)}})...)
	add(both(confCase{name: "6.9 surrogate in a close reason", send: []chunk{one(closeF(1000, "\xed\xa0\x80"))}, want: []want{closed(1007)}})...)
	add(both(confCase{name: "6.9 valid multi-byte close reason", send: []chunk{one(closeF(1000, "κόσμε 😀"))}, want: []want{closed(1000)}})...)
	add(both(confCase{
		name: "invalid UTF-8 before CONNECT_INIT", phase: phaseUpgraded,
		send: []chunk{one(txt(`{"chatMsg":{"senderId":"x` + "\xff" + `","msgType":0}}`))},
		want: []want{closed(1007)},
	})...)
	add(both(confCase{
		name: "ping payloads are not UTF-8 checked",
		send: []chunk{one(pingF([]byte("\xff\xed\xa0\x80")))},
		want: []want{pong([]byte("\xff\xed\xa0\x80"))},
	})...)
	runConformance(t, nodes, cases)
}
