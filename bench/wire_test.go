package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"imgate/client"
)

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want inMsg
		ok   bool
	}{
		{
			name: "ack with string msgId",
			in:   `{"chatMsg":{"senderId":"u-1","msgType":11,"msgId":"7392012345678901234","clientMsgId":"bw0-17","chatTime":"2026-11-27T10:00:00.123Z"}}`,
			want: inMsg{msgType: 11, hasType: true, msgID: []byte("7392012345678901234"), clientMsgID: []byte("bw0-17"), senderID: []byte("u-1")},
			ok:   true,
		},
		{
			name: "delivery with unknown fields, spaces, number msgId, t",
			in:   " {\"serverNode\": {\"ip\":\"x\",\"port\":1}, \"chatMsg\" : { \"media\":{\"w\":[1,2,{\"a\":\"}\"}]}, \"msgId\": 42 , \"t\": 1700000000000000000, \"msgType\": 1 }, \"extend\":\"c-9\", \"cursor\": null }",
			want: inMsg{msgType: 1, hasType: true, msgID: []byte("42"), t: 1700000000000000000, extend: []byte("c-9")},
			ok:   true,
		},
		{
			name: "error",
			in:   `{"chatMsg":{"msgType":12,"clientMsgId":"a-\"1"},"error":{"code":"forbidden","message":"no"}}`,
			want: inMsg{msgType: 12, hasType: true, clientMsgID: []byte(`a-\"1`), errCode: []byte("forbidden")},
			ok:   true,
		},
		{name: "null error and chatMsg", in: `{"chatMsg":null,"error":null}`, want: inMsg{}, ok: true},
		{name: "truncated", in: `{"chatMsg":{"msgType":1`, ok: false},
		{name: "not an object", in: `[1]`, ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m inMsg
			ok := parseEnvelope([]byte(tc.in), &m)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if m.msgType != tc.want.msgType || m.hasType != tc.want.hasType || m.t != tc.want.t ||
				!bytes.Equal(m.msgID, tc.want.msgID) || !bytes.Equal(m.clientMsgID, tc.want.clientMsgID) ||
				!bytes.Equal(m.extend, tc.want.extend) || !bytes.Equal(m.errCode, tc.want.errCode) {
				t.Fatalf("got %+v\nwant %+v", m, tc.want)
			}
		})
	}
}

func TestOutgoingEnvelopesAreJSON(t *testing.T) {
	for _, b := range [][]byte{
		appendInit(nil, "u-1", "", -1),
		appendInit(nil, "u-1", `tok"en`, -1),
		appendKeepalive(nil, "u-1"),
		appendWords(nil, "u-1", "u-2", "bw0", 17, 1700000000000000000, []byte("xxx")),
	} {
		var v struct {
			ChatMsg map[string]any `json:"chatMsg"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.ChatMsg == nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	var m inMsg
	if !parseEnvelope(appendWords(nil, "u-1", "u-2", "bw0", 17, 99, nil), &m) || string(m.clientMsgID) != "bw0-17" || m.t != 99 || m.msgType != 1 {
		t.Fatalf("round trip: %+v", m)
	}
}

func serverFrame(fin bool, op byte, p []byte) []byte {
	b := byte(op)
	if fin {
		b |= 0x80
	}
	out := []byte{b}
	switch n := len(p); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, p...)
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 5000)
	var in []byte
	in = append(in, serverFrame(true, opText, []byte(`{"a":1}`))...)
	in = append(in, serverFrame(false, opText, []byte(`{"b":`))...)
	in = append(in, serverFrame(true, opCont, []byte(`2}`))...)
	in = append(in, serverFrame(true, opPing, []byte("p"))...)
	in = append(in, serverFrame(true, opText, big)...)
	in = append(in, serverFrame(true, opClose, []byte{0x03, 0xe8})...)
	fr := frameReader{br: bufio.NewReaderSize(bytes.NewReader(in), 256)}
	want := []frame{{opText, []byte(`{"a":1}`)}, {opText, []byte(`{"b":2}`)}, {opPing, []byte("p")}, {opText, big}, {opClose, []byte{0x03, 0xe8}}}
	for i, w := range want {
		f, err := fr.next()
		if err != nil || f.op != w.op || !bytes.Equal(f.payload, w.payload) {
			t.Fatalf("frame %d: op %d payload %.20q err %v; want op %d %.20q", i, f.op, f.payload, err, w.op, w.payload)
		}
	}
	bad := frameReader{br: bufio.NewReader(bytes.NewReader(serverFrame(true, opCont, []byte("x"))))}
	if _, err := bad.next(); err == nil {
		t.Fatal("continuation without start must fail")
	}
}

func TestClientFrameIsMasked(t *testing.T) {
	payload := []byte("hello")
	f := appendClientFrame(nil, opText, [4]byte{1, 2, 3, 4}, payload)
	if f[0] != 0x81 || f[1] != 0x80|5 || len(f) != 2+4+5 {
		t.Fatalf("header % x", f[:2])
	}
	for i, c := range f[6:] {
		if c^f[2+i%4] != payload[i] {
			t.Fatalf("byte %d not masked", i)
		}
	}
}

func TestParseFlagsValues(t *testing.T) {
	ips, err := parseAddrRange("127.0.0.2-127.0.0.4,127.0.1.1")
	if err != nil || len(ips) != 4 || ips[0] != "127.0.0.2" || ips[2] != "127.0.0.4" || ips[3] != "127.0.1.1" {
		t.Fatalf("parseAddrRange = %v, %v", ips, err)
	}
	if _, err := parseAddrRange("127.0.0.5-127.0.0.1"); err == nil {
		t.Fatal("reversed range accepted")
	}
	for in, want := range map[string]float64{"500": 500, "500/s": 500, "1.5k/s": 1500, "0": 0} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseRate("fast"); err == nil {
		t.Error("parseRate accepted garbage")
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	in := []byte(`{"chatMsg":{"senderId":"bench-1","receiverId":"bench-2","msg":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","msgType":1,"clientMsgId":"benchw0-123456","t":1700000000000000000,"msgId":"7392012345678901234","chatTime":"2026-11-27T10:00:00.123Z"},"extend":"c-12"}`)
	var m inMsg
	b.ReportAllocs()
	for b.Loop() {
		if !parseEnvelope(in, &m) {
			b.Fatal("parse")
		}
	}
}

func BenchmarkAppendWords(b *testing.B) {
	buf := make([]byte, 0, 512)
	body := bytes.Repeat([]byte("x"), 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendClientFrame(buf[:0], opText, [4]byte{1, 2, 3, 4}, appendWords(buf[256:256], "bench-1", "bench-2", "benchw0", 123456, 1700000000000000000, body))
	}
}

// TestErrKinds: the generator names the usual ways a dial or a pick fails instead of
// counting them as "other" (five picks of a 55,000-connection run failed as "dispatch:
// other" and said nothing more).
func TestErrKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "dial: reset"},
		{fmt.Errorf("write: %w", syscall.EPIPE), "dial: broken pipe"},
		{fmt.Errorf("get: %w", io.EOF), "dial: closed by the server"},
		{fmt.Errorf("get: %w", io.ErrUnexpectedEOF), "dial: closed by the server"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "dial: refused"},
		{errors.New("something else"), "dial: other"},
	} {
		if got := dialErrKind(tc.err); got != tc.want {
			t.Errorf("dialErrKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := dispatchErrKind(fmt.Errorf("get: %w", syscall.ECONNRESET)); got != "dispatch: reset" {
		t.Errorf("dispatchErrKind(reset) = %q", got)
	}
	// The Go client's pick answers a status other than 200 with *client.HTTPError.
	if got := dispatchErrKind(&client.HTTPError{URL: "http://127.0.0.1:1/api/v1/nodes/pick", Status: 503}); got != "dispatch: http 503" {
		t.Errorf("dispatchErrKind(503) = %q, want dispatch: http 503", got)
	}
}
