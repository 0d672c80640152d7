package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

const sampleKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

// request builds an upgrade request from header lines (CRLF added).
func request(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

func stdRequest(extra ...string) string {
	lines := []string{
		"GET /ws HTTP/1.1",
		"Host: 127.0.0.1:875",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + sampleKey,
		"Sec-WebSocket-Version: 13",
	}
	return request(append(lines, extra...)...)
}

func TestParseUpgradeOK(t *testing.T) {
	tests := []struct {
		name string
		req  string
		want Upgrade
	}{
		{
			name: "standard",
			req:  stdRequest(),
			want: Upgrade{Method: "GET", Path: "/ws", Host: "127.0.0.1:875", Key: sampleKey},
		},
		{
			name: "query origin and extensions ignored",
			req: request(
				"GET /ws?userId=u1&x=%20 HTTP/1.1",
				"host:  example.com ",
				"upgrade: WebSocket",
				"connection: keep-alive, Upgrade",
				"sec-websocket-key: "+sampleKey,
				"sec-websocket-version: 13",
				"Origin: http://example.com",
				"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
				"User-Agent: test",
			),
			want: Upgrade{Method: "GET", Path: "/ws", Query: "userId=u1&x=%20", Host: "example.com", Key: sampleKey, Origin: "http://example.com"},
		},
		{
			name: "connection token in second header and upgrade list",
			req: request(
				"GET / HTTP/1.1",
				"Host: h",
				"Upgrade: foo/1, websocket",
				"Connection: keep-alive",
				"Connection: UPGRADE",
				"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==",
				"Sec-WebSocket-Version: 13",
			),
			want: Upgrade{Method: "GET", Path: "/", Host: "h", Key: "AAAAAAAAAAAAAAAAAAAAAA=="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.req)
			for i := 0; i < len(b); i++ {
				_, n, err := ParseUpgrade(b[:i])
				if !errors.Is(err, ErrIncomplete) || n != 0 {
					t.Fatalf(
						"prefix %d: n=%d err=%v, want ErrIncomplete",
						i, n, err)
				}
			}
			u, n, err := ParseUpgrade(b)
			if err != nil {
				t.Fatalf(
					"err = %v",
					err)
			}
			if n != len(b) {
				t.Errorf(
					"n = %d, want %d",
					n, len(b))
			}
			if u != tt.want {
				t.Errorf(
					"got %+v\nwant %+v",
					u, tt.want)
			}
		})
	}
}

func TestParseUpgradeWithFrames(t *testing.T) {
	req := stdRequest()
	frames := append(clientFrame(0x81, []byte("hi")), clientFrame(0x89, []byte("p"))...)
	b := append([]byte(req), frames...)
	u, n, err := ParseUpgrade(b)
	if err != nil || u.Key != sampleKey {
		t.Fatalf(
			"err = %v, u = %+v",
			err, u)
	}
	if n != len(req) {
		t.Fatalf(
			"n = %d, want %d (first frame byte)",
			n, len(req))
	}
	got := runParser(&Parser{}, [][]byte{b[n:]}, false)
	want := []event{{Kind: KindText, Payload: "hi"}, {Kind: KindPing, Payload: "p"}}
	if !equalEvents(got, want) {
		t.Fatalf(
			"events %v, want %v",
			got, want)
	}
}

func TestParseUpgradeErrors(t *testing.T) {
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{
			name:   "post",
			req:    strings.Replace(stdRequest(), "GET", "POST", 1),
			status: 405,
		},
		{
			name:   "http 1.0",
			req:    strings.Replace(stdRequest(), "HTTP/1.1", "HTTP/1.0", 1),
			status: 400,
		},
		{
			name:   "request line without version",
			req:    request("GET /ws", "Host: h"),
			status: 400,
		},
		{
			name:   "request line with extra space",
			req:    strings.Replace(stdRequest(), "GET /ws", "GET  /ws", 1),
			status: 400,
		},
		{
			name:   "garbage",
			req:    request("\x00\x01\x02", "x"),
			status: 400,
		},
		{
			name:   "header without colon",
			req:    stdRequest("NoColon"),
			status: 400,
		},
		{
			name:   "space before colon",
			req:    stdRequest("Bad : x"),
			status: 400,
		},
		{
			name:   "obs-fold",
			req:    stdRequest("X-A: 1", " folded"),
			status: 400,
		},
		{
			name:   "bare LF in value",
			req:    stdRequest("X-A: 1\nX-B: 2"),
			status: 400,
		},
		{
			name:   "missing host",
			req:    strings.Replace(stdRequest(), "Host: 127.0.0.1:875\r\n", "", 1),
			status: 400,
		},
		{
			name:   "duplicate host",
			req:    stdRequest("Host: other"),
			status: 400,
		},
		{
			name:   "missing upgrade",
			req:    strings.Replace(stdRequest(), "Upgrade: websocket\r\n", "", 1),
			status: 400,
		},
		{
			name:   "wrong upgrade",
			req:    strings.Replace(stdRequest(), "Upgrade: websocket", "Upgrade: h2c", 1),
			status: 400,
		},
		{
			name:   "missing connection",
			req:    strings.Replace(stdRequest(), "Connection: Upgrade\r\n", "", 1),
			status: 400,
		},
		{
			name:   "connection without upgrade token",
			req:    strings.Replace(stdRequest(), "Connection: Upgrade", "Connection: keep-alive, upgrades", 1),
			status: 400,
		},
		{
			name:   "version 8",
			req:    strings.Replace(stdRequest(), "Version: 13", "Version: 8", 1),
			status: 426,
		},
		{
			name:   "missing version",
			req:    strings.Replace(stdRequest(), "Sec-WebSocket-Version: 13\r\n", "", 1),
			status: 426,
		},
		{
			name:   "conflicting versions",
			req:    stdRequest("Sec-WebSocket-Version: 8"),
			status: 426,
		},
		{
			name:   "missing key",
			req:    strings.Replace(stdRequest(), "Sec-WebSocket-Key: "+sampleKey+"\r\n", "", 1),
			status: 400,
		},
		{
			name:   "short key",
			req:    strings.Replace(stdRequest(), sampleKey, "dGhlIHNhbXBsZQ==", 1),
			status: 400,
		},
		{
			name:   "key of 17 bytes",
			req:    strings.Replace(stdRequest(), sampleKey, "AAAAAAAAAAAAAAAAAAAAAAA=", 1),
			status: 400,
		},
		{
			name:   "key not base64",
			req:    strings.Replace(stdRequest(), sampleKey, "!!!!!!!!!!!!!!!!!!!!!!==", 1),
			status: 400,
		},
		{
			name:   "duplicate key",
			req:    stdRequest("Sec-WebSocket-Key: " + sampleKey),
			status: 400,
		},
		{
			name:   "too large",
			req:    stdRequest("X-Pad: " + strings.Repeat("a", MaxHandshakeBytes)),
			status: 431,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.req)
			for i := 0; i < len(b) && i < MaxHandshakeBytes; i += 1 + i/64 {
				_, _, err := ParseUpgrade(b[:i])
				var he *HTTPError
				if hasBareLF(b[:i]) && errors.As(err, &he) && he.Status == 400 {
					continue // refused as soon as the bare LF arrives
				}
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf(
						"prefix %d: err = %v, want ErrIncomplete",
						i, err)
				}
			}
			_, n, err := ParseUpgrade(b)
			var he *HTTPError
			if !errors.As(err, &he) {
				t.Fatalf(
					"err = %v, want *HTTPError",
					err)
			}
			if he.Status != tt.status || n != 0 {
				t.Fatalf(
					"status %d n %d (%s), want %d",
					he.Status, n, he.Reason, tt.status)
			}
		})
	}
}

func TestParseUpgrade431WithoutTerminator(t *testing.T) {
	b := bytes.Repeat([]byte("a"), MaxHandshakeBytes)
	_, _, err := ParseUpgrade(b[:MaxHandshakeBytes-1])
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf(
			"err = %v, want ErrIncomplete",
			err)
	}
	_, _, err = ParseUpgrade(b)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 431 {
		t.Fatalf(
			"err = %v, want 431",
			err)
	}
	// Exactly MaxHandshakeBytes including CRLFCRLF is accepted.
	req := stdRequest()
	pad := "X-Pad: " + strings.Repeat("a", MaxHandshakeBytes-len(req)-len("X-Pad: \r\n"))
	req = stdRequest(pad)
	if len(req) != MaxHandshakeBytes {
		t.Fatalf(
			"test bug: len %d",
			len(req))
	}
	if _, n, err := ParseUpgrade([]byte(req)); err != nil || n != MaxHandshakeBytes {
		t.Fatalf(
			"n=%d err=%v",
			n, err)
	}
}

func TestAppendUpgradeResponse(t *testing.T) {
	b := AppendUpgradeResponse([]byte("x"), sampleKey)
	if b[0] != 'x' {
		t.Fatal("dst prefix lost")
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b[1:])), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Errorf(
			"status %d",
			resp.StatusCode)
	}
	checks := map[string]string{
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"Sec-Websocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
	}
	for k, v := range checks {
		if got := resp.Header.Get(k); got != v {
			t.Errorf(
				"%s = %q, want %q",
				k, got, v)
		}
	}
	if resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Error("extension negotiated")
	}
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		t.Error("response does not end with CRLFCRLF")
	}
}

func TestAppendHTTPError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		reason     string
		wantBody   string
		wantHeader map[string]string
	}{
		{
			name:     "400",
			status:   400,
			reason:   "missing Sec-WebSocket-Key",
			wantBody: "missing Sec-WebSocket-Key",
		},
		{
			name:     "404 without reason",
			status:   404,
			wantBody: "Not Found",
		},
		{
			name:       "405",
			status:     405,
			reason:     "method not allowed",
			wantBody:   "method not allowed",
			wantHeader: map[string]string{"Allow": "GET"},
		},
		{
			name:       "426",
			status:     426,
			reason:     "x",
			wantBody:   "x",
			wantHeader: map[string]string{"Sec-Websocket-Version": "13"},
		},
		{
			name:     "431",
			status:   431,
			reason:   "too large",
			wantBody: "too large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendHTTPError(nil, tt.status, tt.reason)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.wantBody {
				t.Errorf(
					"status %d body %q",
					resp.StatusCode, body)
			}
			if !resp.Close || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf(
					"headers %v",
					resp.Header)
			}
			for k, v := range tt.wantHeader {
				if resp.Header.Get(k) != v {
					t.Errorf(
						"%s = %q, want %q",
						k, resp.Header.Get(k), v)
				}
			}
			if got := string(b[len(b)-len(tt.wantBody):]); got != tt.wantBody {
				t.Errorf(
					"trailing bytes %q",
					got)
			}
		})
	}
}

func TestParseUpgradeAllocs(t *testing.T) {
	b := []byte(stdRequest())
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseUpgrade(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf(
			"ParseUpgrade allocates %v times, want at most 1",
			allocs)
	}
}

// TestParseUpgradeBareLF: a request head with bare-LF line ends is refused with 400 as
// soon as the first bare LF is buffered, whatever the split, never left waiting for a
// CRLFCRLF that will not come (it would hold the connection until the init timeout).
func TestParseUpgradeBareLF(t *testing.T) {
	for _, req := range []string{
		"GET /ws HTTP/1.1\nHost: x\n\n",
		"GET /ws HTTP/1.1\r\nHost: x\nUpgrade: websocket\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\n\n",
	} {
		first := strings.IndexByte(req, '\n')
		for first > 0 && req[first-1] == '\r' {
			first += 1 + strings.IndexByte(req[first+1:], '\n')
		}
		for i := 0; i <= len(req); i++ {
			_, _, err := ParseUpgrade([]byte(req[:i]))
			if i <= first {
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf("%q[:%d]: err = %v, want ErrIncomplete", req, i, err)
				}
				continue
			}
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != 400 {
				t.Fatalf("%q[:%d]: err = %v, want 400", req, i, err)
			}
		}
	}
}
