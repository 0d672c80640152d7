package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame builds a masked client frame with first byte b0 (FIN, RSV,
// opcode). The masking is done here, independently of ws.Cipher.
func clientFrame(b0 byte, payload []byte) []byte {
	return rawFrame(b0, true, uint64(len(payload)), payload)
}

// rawFrame builds a frame declaring length (which may differ from
// len(payload)), masked or not.
func rawFrame(b0 byte, masked bool, length uint64, payload []byte) []byte {
	b := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch {
	case length <= 125:
		b = append(b, m|byte(length))
	case length <= 0xffff:
		b = append(b, m|126, byte(length>>8), byte(length))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, length)
	}
	if masked {
		b = append(b, testMask[:]...)
	}
	for i, c := range payload {
		if masked {
			c ^= testMask[i%4]
		}
		b = append(b, c)
	}
	return b
}

func text(fin bool, s string) []byte   { return clientFrame(finBit(fin)|0x1, []byte(s)) }
func contin(fin bool, s string) []byte { return clientFrame(finBit(fin), []byte(s)) }
func ping(s string) []byte             { return clientFrame(0x89, []byte(s)) }
func pong(s string) []byte             { return clientFrame(0x8a, []byte(s)) }
func closeFrame(code uint16, reason string) []byte {
	return clientFrame(0x88, append(binary.BigEndian.AppendUint16(nil, code), reason...))
}

func finBit(fin bool) byte {
	if fin {
		return 0x80
	}
	return 0
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// event is one observable result of Parser.Next, comparable across runs.
type event struct {
	Kind    Kind
	Payload string
	Code    ws.StatusCode
	Reason  string
	Err     ws.StatusCode // non-zero: Next failed with this close code
}

func (e event) String() string {
	if e.Err != 0 {
		return fmt.Sprintf("err(%d)", e.Err)
	}
	p := e.Payload
	if len(p) > 20 {
		p = fmt.Sprintf("%.20s…(%d)", p, len(e.Payload))
	}
	if e.Kind == KindClose {
		return fmt.Sprintf("close(%d,%q)", e.Code, e.Reason)
	}
	return fmt.Sprintf("%s(%q)", e.Kind, p)
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// runParser delivers chunks one after another, calling Next until it needs
// more bytes after each delivery, like the gnet event loop. With fresh, every
// call sees a new copy of the unconsumed bytes and changes made to it are
// lost when Next needs more (a ring buffer that copies on wrap-around).
func runParser(p *Parser, chunks [][]byte, fresh bool) []event {
	var evs []event
	var buf []byte
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			in := buf
			if fresh {
				in = append([]byte(nil), buf...)
			}
			f, n, err := p.Next(in)
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) {
					panic(fmt.Sprintf("error %T %v is not *CloseError", err, err))
				}
				return append(evs, event{Err: ce.Code})
			}
			if n == 0 {
				break
			}
			if n < 0 || n > len(in) {
				panic(fmt.Sprintf("n = %d out of range (len %d)", n, len(in)))
			}
			evs = append(evs, event{Kind: f.Kind, Payload: string(f.Payload), Code: f.Code, Reason: f.Reason})
			buf = append([]byte(nil), in[n:]...)
		}
	}
	return evs
}

// splits returns the ways runParser feeds data in the split tests.
func splits(data []byte) map[string][][]byte {
	out := map[string][][]byte{"whole": {data}}
	step := 1
	if len(data) > 4096 {
		step = len(data)/512 + 1
	}
	for i := 1; i < len(data); i += step {
		out[fmt.Sprintf("cut at %d", i)] = [][]byte{data[:i], data[i:]}
	}
	if len(data) <= 4096 {
		var bb [][]byte
		for i := range data {
			bb = append(bb, data[i:i+1])
		}
		out["byte by byte"] = bb
	}
	return out
}

func TestParser(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name  string
		max   int
		input []byte
		want  []event
	}{
		{
			name:  "small text",
			input: text(true, "hello"),
			want:  []event{{Kind: KindText, Payload: "hello"}},
		},
		{
			name:  "empty text",
			input: text(true, ""),
			want:  []event{{Kind: KindText}},
		},
		{
			name:  "125 bytes 7-bit length",
			input: text(true, long(125)),
			want:  []event{{Kind: KindText, Payload: long(125)}},
		},
		{
			name:  "126 bytes 16-bit length",
			input: text(true, long(126)),
			want:  []event{{Kind: KindText, Payload: long(126)}},
		},
		{
			name:  "65535 bytes 16-bit length",
			max:   1 << 20,
			input: text(true, long(65535)),
			want:  []event{{Kind: KindText, Payload: long(65535)}},
		},
		{
			name:  "65536 bytes 64-bit length",
			max:   1 << 20,
			input: text(true, long(65536)),
			want:  []event{{Kind: KindText, Payload: long(65536)}},
		},
		{
			name:  "exactly the default limit",
			input: text(true, long(DefaultMaxMessage)),
			want:  []event{{Kind: KindText, Payload: long(DefaultMaxMessage)}},
		},
		{
			name:  "many frames in one buffer",
			input: cat(text(true, "a"), ping("p"), pong(""), text(true, "élan 😀"), closeFrame(1000, "bye")),
			want: []event{
				{Kind: KindText, Payload: "a"},
				{Kind: KindPing, Payload: "p"},
				{Kind: KindPong},
				{Kind: KindText, Payload: "élan 😀"},
				{Kind: KindClose, Payload: "\x03\xe8bye", Code: 1000, Reason: "bye"},
			},
		},
		{
			name:  "fragmented text with ping between fragments",
			input: cat(text(false, "Hel"), ping("p1"), contin(false, "lo"), pong("q"), contin(true, "!"), text(true, "next")),
			want: []event{
				{Kind: KindNone},
				{Kind: KindPing, Payload: "p1"},
				{Kind: KindNone},
				{Kind: KindPong, Payload: "q"},
				{Kind: KindText, Payload: "Hello!"},
				{Kind: KindText, Payload: "next"},
			},
		},
		{
			name:  "empty fragments",
			input: cat(text(false, ""), contin(false, ""), contin(true, "")),
			want:  []event{{Kind: KindNone}, {Kind: KindNone}, {Kind: KindText}},
		},
		{
			name:  "utf-8 sequence split across fragments",
			input: cat(text(false, "\xf0\x9f"), contin(false, "\x98"), contin(true, "\x80!")),
			want:  []event{{Kind: KindNone}, {Kind: KindNone}, {Kind: KindText, Payload: "😀!"}},
		},
		{
			name:  "fragments up to the limit",
			max:   10,
			input: cat(text(false, "12345"), contin(true, "67890")),
			want:  []event{{Kind: KindNone}, {Kind: KindText, Payload: "1234567890"}},
		},
		{
			name:  "close without payload",
			input: clientFrame(0x88, nil),
			want:  []event{{Kind: KindClose, Code: ws.StatusNoStatusRcvd}},
		},
		{
			name:  "close codes in range",
			input: cat(closeFrame(1001, ""), closeFrame(3000, "app"), closeFrame(4999, "é")),
			want: []event{
				{Kind: KindClose, Payload: "\x03\xe9", Code: 1001},
				{Kind: KindClose, Payload: "\x0b\xb8app", Code: 3000, Reason: "app"},
				{Kind: KindClose, Payload: "\x13\x87é", Code: 4999, Reason: "é"},
			},
		},
		{
			name:  "binary reported at its header then 1003",
			input: cat(clientFrame(0x82, []byte{1, 2, 3}), text(true, "x")),
			want:  []event{{Kind: KindBinary}, {Err: 1003}},
		},
		{
			name:  "binary first fragment",
			input: clientFrame(0x02, []byte{1}),
			want:  []event{{Kind: KindBinary}, {Err: 1003}},
		},

		// 1002 protocol violations.
		{
			name:  "unmasked frame",
			input: rawFrame(0x81, false, 2, []byte("hi")),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "rsv1",
			input: clientFrame(0xc1, []byte("x")),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "rsv2",
			input: clientFrame(0xa1, []byte("x")),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "rsv3 on ping",
			input: clientFrame(0x99, nil),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "reserved data opcode 3",
			input: clientFrame(0x83, nil),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "reserved data opcode 7",
			input: clientFrame(0x87, nil),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "reserved control opcode B",
			input: clientFrame(0x8b, nil),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "reserved control opcode F",
			input: clientFrame(0x8f, []byte("x")),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "fragmented ping",
			input: clientFrame(0x09, []byte("x")),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "ping over 125 bytes",
			input: clientFrame(0x89, []byte(long(126))),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close over 125 bytes",
			input: clientFrame(0x88, append([]byte{3, 0xe8}, long(124)...)),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "continuation without start",
			input: contin(true, "x"),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "continuation after a complete message",
			input: cat(text(false, "a"), contin(true, "b"), contin(true, "c")),
			want:  []event{{Kind: KindNone}, {Kind: KindText, Payload: "ab"}, {Err: 1002}},
		},
		{
			name:  "new text inside fragmented message",
			input: cat(text(false, "a"), text(true, "b")),
			want:  []event{{Kind: KindNone}, {Err: 1002}},
		},
		{
			name:  "new binary inside fragmented message",
			input: cat(text(false, "a"), clientFrame(0x82, nil)),
			want:  []event{{Kind: KindNone}, {Err: 1002}},
		},
		{
			name:  "1-byte close payload",
			input: clientFrame(0x88, []byte{3}),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "64-bit length with top bit set",
			input: rawFrame(0x81, true, 1<<63, nil),
			want:  []event{{Err: 1002}},
		},

		// 1007 invalid UTF-8.
		{
			name:  "invalid utf-8 in text",
			input: text(true, "ab\xffcd"),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "overlong encoding",
			input: text(true, "\xc0\x80"),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "surrogate",
			input: text(true, "\xed\xa0\x80"),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "above U+10FFFF",
			input: text(true, "\xf4\x90\x80\x80"),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "incomplete sequence at end of message",
			input: text(true, "ok\xe2\x82"),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "incomplete sequence at end of final fragment",
			input: cat(text(false, "ok"), contin(true, "\xe2\x82")),
			want:  []event{{Kind: KindNone}, {Err: 1007}},
		},
		{
			name:  "fail fast in first fragment",
			input: cat(text(false, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), contin(true, "edited")),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "fail fast in partial frame",
			input: rawFrame(0x81, true, 100, []byte("valid \xf4\x90")),
			want:  []event{{Err: 1007}},
		},
		{
			name:  "fail fast in partial continuation",
			input: cat(text(false, "a\xc3"), rawFrame(0x00, true, 50, []byte("\xa9 ok \xff"))),
			want:  []event{{Kind: KindNone}, {Err: 1007}},
		},
		{
			name:  "partial frame valid so far",
			input: rawFrame(0x81, true, 100, []byte("valid \xf4\x8f")),
			want:  nil,
		},
		{
			name:  "invalid utf-8 in close reason",
			input: closeFrame(1000, "\xff"),
			want:  []event{{Err: 1007}},
		},

		// Invalid close codes: 1002.
		{
			name:  "close code 0",
			input: closeFrame(0, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 999",
			input: closeFrame(999, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 1004",
			input: closeFrame(1004, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 1005",
			input: closeFrame(1005, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 1006",
			input: closeFrame(1006, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 1015",
			input: closeFrame(1015, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 1016",
			input: closeFrame(1016, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 2999",
			input: closeFrame(2999, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 5000",
			input: closeFrame(5000, ""),
			want:  []event{{Err: 1002}},
		},
		{
			name:  "close code 65535",
			input: closeFrame(65535, ""),
			want:  []event{{Err: 1002}},
		},

		// 1009 message too big, from the header.
		{
			name:  "frame over the limit",
			max:   10,
			input: text(true, long(11)),
			want:  []event{{Err: 1009}},
		},
		{
			name:  "header only of a 1 MiB frame",
			input: rawFrame(0x81, true, 1<<20, nil),
			want:  []event{{Err: 1009}},
		},
		{
			name:  "fragments over the limit",
			max:   10,
			input: cat(text(false, "123456"), ping(""), rawFrame(0x80, true, 5, nil)),
			want:  []event{{Kind: KindNone}, {Kind: KindPing}, {Err: 1009}},
		},
		{
			name:  "binary over the limit",
			max:   10,
			input: rawFrame(0x82, true, 11, nil),
			want:  []event{{Err: 1009}},
		},
		{
			name:  "huge 64-bit length",
			input: rawFrame(0x81, true, 1<<62, nil),
			want:  []event{{Err: 1009}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, chunks := range splits(tt.input) {
				for _, fresh := range []bool{false, true} {
					got := runParser(&Parser{MaxMessage: tt.max}, chunks, fresh)
					if !equalEvents(got, tt.want) {
						t.Fatalf(
							"%s (fresh copies %v): got %v\nwant %v",
							how, fresh, got, tt.want)
					}
				}
			}
		})
	}
}

func TestParserHeaderOnly1009(t *testing.T) {
	hdr := rawFrame(0x81, true, 1<<20, nil)
	var p Parser
	_, n, err := p.Next(hdr)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != ws.StatusMessageTooBig || n != 0 {
		t.Fatalf(
			"n=%d err=%v, want 1009",
			n, err)
	}
	// The header is incomplete without the mask: no decision yet.
	var q Parser
	if _, n, err := q.Next(hdr[:len(hdr)-1]); n != 0 || err != nil {
		t.Fatalf(
			"partial header: n=%d err=%v",
			n, err)
	}
	// Errors are sticky.
	if _, _, err2 := p.Next(text(true, "x")); err2 != err {
		t.Fatalf(
			"second call: %v, want the same error",
			err2)
	}
}

func TestParserPayloadBorrowed(t *testing.T) {
	b := text(true, "hello")
	var p Parser
	f, n, err := p.Next(b)
	if err != nil || n != len(b) {
		t.Fatalf(
			"n=%d err=%v",
			n, err)
	}
	if &f.Payload[0] != &b[len(b)-5] {
		t.Error("single-frame payload is not a slice of the input")
	}
}

func TestParserReleasesFragmentBuffer(t *testing.T) {
	var p Parser
	b := cat(text(false, "hel"), contin(true, "lo"))
	_, n, _ := p.Next(b)
	if p.frag == nil {
		t.Fatal("first fragment not buffered")
	}
	f, _, err := p.Next(b[n:])
	if err != nil || string(f.Payload) != "hello" {
		t.Fatalf(
			"f=%v err=%v",
			f, err)
	}
	if _, n, err := p.Next(nil); n != 0 || err != nil {
		t.Fatalf(
			"n=%d err=%v",
			n, err)
	}
	if p.frag != nil || p.inMsg || p.checked != 0 || p.utf != (utf8State{}) {
		t.Fatalf(
			"parser not back to idle: %+v",
			p)
	}
}

func TestParserSize(t *testing.T) {
	if s := unsafe.Sizeof(Parser{}); s > 64 {
		t.Errorf(
			"Parser is %d bytes, want at most 64 (memory per idle connection)",
			s)
	}
}

func TestParserAllocs(t *testing.T) {
	frame := text(true, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hello","msgType":1}}`)
	buf := make([]byte, len(frame))
	var p Parser
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, frame)
		if _, n, err := p.Next(buf); err != nil || n != len(buf) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf(
			"Next allocates %v times per small text frame, want 0",
			allocs)
	}
}

// TestParserPartialValidationLinear checks that a frame arriving byte by byte
// is validated once per byte, not from its start at every call.
func TestParserPartialValidationLinear(t *testing.T) {
	payload := strings.Repeat("é", 2000)
	b := text(true, payload)
	var p Parser
	hdr := len(b) - len(payload)
	for i := hdr; i < len(b); i++ {
		_, n, err := p.Next(b[:i])
		if n != 0 || err != nil {
			t.Fatalf(
				"prefix %d: n=%d err=%v",
				i, n, err)
		}
		if p.checked != i-hdr {
			t.Fatalf(
				"prefix %d: checked %d, want %d",
				i, p.checked, i-hdr)
		}
	}
	f, _, err := p.Next(b)
	if err != nil || string(f.Payload) != payload {
		t.Fatalf(
			"err %v",
			err)
	}
}

func TestUTF8StateMatchesStdlib(t *testing.T) {
	inputs := []string{
		"", "a", "é", "😀", "\xff", "\xc3", "\xe2\x82\xac", "\xed\x9f\xbf", "\xed\xa0\x80",
		"\xf0\x90\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xc1\xbf",
		"\xe0\x9f\xbf", "\xe0\xa0\x80", "abcdefgh\xe2\x82\xacijklmnop", "\x80",
	}
	for _, s := range inputs {
		var st utf8State
		ok := st.feed([]byte(s)) && st.complete()
		if want := validUTF8(s); ok != want {
			t.Errorf(
				"%q: got %v, want %v",
				s, ok, want)
		}
		// Byte by byte gives the same answer.
		var st2 utf8State
		ok2 := true
		for i := 0; i < len(s) && ok2; i++ {
			ok2 = st2.feed([]byte{s[i]})
		}
		if ok2 = ok2 && st2.complete(); ok2 != ok {
			t.Errorf(
				"%q byte by byte: got %v, want %v",
				s, ok2, ok)
		}
	}
}

func validUTF8(s string) bool { return utf8.ValidString(s) }
