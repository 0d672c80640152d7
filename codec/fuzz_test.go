package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParser feeds arbitrary client bytes whole, cut in two at every
// position, byte by byte (short inputs) and as fresh copies: every way must
// give the same sequence of frames and errors, and none may panic.
func FuzzParser(f *testing.F) {
	seeds := [][]byte{
		text(true, "hello"),
		cat(text(false, "Hel"), ping("p"), contin(true, "lo")),
		cat(text(false, "\xf0\x9f"), contin(true, "\x98\x80")),
		closeFrame(1000, "bye"),
		clientFrame(0x88, []byte{3}),
		rawFrame(0x81, true, 100, []byte("valid \xf4\x90")),
		rawFrame(0x81, true, 1<<20, nil),
		rawFrame(0x81, false, 2, []byte("hi")),
		text(true, strings.Repeat("é", 70)),
		clientFrame(0x82, []byte{1, 2}),
	}
	for _, s := range seeds {
		f.Add(s, uint16(0))
		f.Add(s, uint16(16))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		whole := runParser(&Parser{MaxMessage: int(max)}, [][]byte{data}, false)
		for i := 1; i < len(data); i++ {
			got := runParser(&Parser{MaxMessage: int(max)}, [][]byte{data[:i], data[i:]}, i%2 == 0)
			if !equalEvents(got, whole) {
				t.Fatalf(
					"cut at %d: %v\nwhole: %v",
					i, got, whole)
			}
		}
		if len(data) <= 512 {
			var bb [][]byte
			for i := range data {
				bb = append(bb, data[i:i+1])
			}
			for _, fresh := range []bool{false, true} {
				got := runParser(&Parser{MaxMessage: int(max)}, bb, fresh)
				if !equalEvents(got, whole) {
					t.Fatalf(
						"byte by byte (fresh %v): %v\nwhole: %v",
						fresh, got, whole)
				}
			}
		}
	})
}

// FuzzParseUpgrade checks that growing prefixes of a request give
// ErrIncomplete until a decision, and the same decision afterwards.
func FuzzParseUpgrade(f *testing.F) {
	f.Add([]byte(stdRequest()))
	f.Add(append([]byte(stdRequest()), text(true, "x")...))
	f.Add([]byte(strings.Replace(stdRequest(), "GET", "POST", 1)))
	f.Add([]byte(strings.Replace(stdRequest(), "Version: 13", "Version: 8", 1)))
	f.Add([]byte(request("GET /ws?q=1 HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: upgrade",
		"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==", "Sec-WebSocket-Version: 13", "Origin: o")))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		type result struct {
			u      Upgrade
			n      int
			status int
		}
		do := func(b []byte) (result, bool) {
			u, n, err := ParseUpgrade(b)
			if errors.Is(err, ErrIncomplete) {
				if n != 0 {
					t.Fatalf(
						"ErrIncomplete with n = %d",
						n)
				}
				return result{}, false
			}
			r := result{u: u, n: n}
			if err != nil {
				var he *HTTPError
				if !errors.As(err, &he) {
					t.Fatalf(
						"error %T %v",
						err, err)
				}
				r.status = he.Status
			} else if n < 4 || n > len(b) || n > MaxHandshakeBytes || string(b[n-4:n]) != "\r\n\r\n" {
				t.Fatalf(
					"n = %d does not end a request head",
					n)
			}
			return r, true
		}
		final, done := do(data)
		decided := false
		var first result
		step := 1
		if len(data) > 1024 {
			step = 7
		}
		for k := 0; k < len(data); k += step {
			r, ok := do(data[:k])
			if ok && !decided {
				decided, first = true, r
			}
			if decided && (!ok || r != first) {
				t.Fatalf(
					"prefix %d: %+v after deciding %+v",
					k, r, first)
			}
		}
		if decided && (!done || final != first) {
			t.Fatalf(
				"whole input %+v, prefixes decided %+v",
				final, first)
		}
	})
}

// FuzzDecodeEnvelope checks that decoding never panics, agrees with
// encoding/json on what is JSON, and that decode→encode is stable.
func FuzzDecodeEnvelope(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.json")
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"chatMsg":{"msgType":1,"k\"ey":"v","msg":"\ud800x"},"cursor":"7"}`))
	f.Add([]byte(`{"chatMsg":{"msgType":"1"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"chatMsg":{"msgType":1,"token":"t","x":[1e400,"\u0000"],"y":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}}`))
	f.Add([]byte(`{"chatMsg":{"msgType":1,"n":123456789012345678901234567890123}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(b []byte) {
			e, err := DecodeEnvelope(b)
			if err != nil {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf(
						"error %T %v",
						err, err)
				}
				if de.Code != CodeBadJSON && !json.Valid(b) {
					t.Fatalf(
						"%q is not JSON but got %q",
						b, de.Code)
				}
				return
			}
			if !json.Valid(b) {
				t.Fatalf(
					"%q is not JSON but decoded",
					b)
			}
			out := AppendEnvelope(nil, e)
			if !json.Valid(out) {
				t.Fatalf(
					"encoded %q is not JSON (input %q)",
					out, b)
			}
			e2, err := DecodeEnvelope(out)
			if err != nil {
				t.Fatalf(
					"re-decoding %q: %v",
					out, err)
			}
			if out2 := AppendEnvelope(nil, e2); !bytes.Equal(out, out2) {
				t.Fatalf(
					"unstable:\n%s\n%s",
					out, out2)
			}
			if !bytes.Equal(e.ChatMsg.Extra, e2.ChatMsg.Extra) {
				t.Fatalf(
					"Extra changed: %q -> %q",
					e.ChatMsg.Extra, e2.ChatMsg.Extra)
			}
			// What is stored and replayed decodes with encoding/json (a Go client),
			// is bounded, and carries no token inside chatMsg.
			var v struct {
				ChatMsg map[string]any `json:"chatMsg"`
			}
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("encoding/json cannot decode %q: %v", out, err)
			}
			if len(e.ChatMsg.Extra) > MaxExtraBytes {
				t.Fatalf("Extra of %d bytes", len(e.ChatMsg.Extra))
			}
			for k := range v.ChatMsg {
				if strings.EqualFold(k, "token") {
					t.Fatalf("token kept in chatMsg: %q", out)
				}
			}
		}
		check(data)
		for i := 0; i < len(data) && i < 512; i++ {
			check(data[:i])
		}
	})
}
