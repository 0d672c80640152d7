package codec

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // G505: RFC 6455 defines Sec-WebSocket-Accept with SHA-1
	"encoding/base64"
	"strconv"
	"strings"
)

// MaxHandshakeBytes bounds the request head (request line, headers and the
// terminating CRLFCRLF). A longer request is refused with 431.
const MaxHandshakeBytes = 8192

// acceptGUID is the RFC 6455 §1.3 magic appended to Sec-WebSocket-Key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Upgrade is a parsed WebSocket upgrade request. All fields share one small
// allocation; none refers to the input bytes.
type Upgrade struct {
	Method string // always "GET" on success
	Path   string // request-target without the query string ("/ws")
	Query  string // raw query string without '?' ("" when none)
	Host   string // Host header
	Key    string // Sec-WebSocket-Key (24 base64 bytes)
	Origin string // Origin header, "" when absent
}

// ParseUpgrade parses an HTTP/1.1 WebSocket upgrade request (RFC 6455 §4.2.1)
// from the bytes buffered so far.
//
// It returns ErrIncomplete while b lacks the CRLFCRLF that ends the request
// head, and *HTTPError when the request must be refused (400 malformed or not
// an upgrade, 405 method not GET, 426 Sec-WebSocket-Version not 13, 431 head
// over MaxHandshakeBytes). On success n is the length of the request head
// including CRLFCRLF: bytes after it (frames the client sent in the same
// write) belong to the frame parser. Extensions and subprotocols are never
// negotiated; the path is for the caller to check (404 via AppendHTTPError).
func ParseUpgrade(b []byte) (u Upgrade, n int, err error) {
	lim := b
	if len(lim) > MaxHandshakeBytes {
		lim = lim[:MaxHandshakeBytes]
	}
	end := bytes.Index(lim, crlfcrlf)
	if end < 0 {
		if len(b) >= MaxHandshakeBytes {
			return u, 0, &HTTPError{Status: 431, Reason: "request header fields too large"}
		}
		// A bare LF line end would never be followed by CRLFCRLF: refuse it now
		// rather than wait out the init timeout.
		if hasBareLF(lim) {
			return u, 0, badRequest("line ends must be CRLF")
		}
		return u, 0, ErrIncomplete
	}
	n = end + 4
	head := b[:end+2] // every line, including the last one, ends with CRLF

	// Request line: method SP request-target SP HTTP-version.
	i := bytes.Index(head, crlf)
	line := head[:i]
	head = head[i+2:]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return u, 0, badRequest("malformed request line")
	}
	method := line[:sp1]
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return u, 0, badRequest("malformed request line")
	}
	target := rest[:sp2]
	version := rest[sp2+1:]
	if !isToken(method) || !validTarget(target) || string(version) != "HTTP/1.1" {
		return u, 0, badRequest("malformed request line")
	}

	var (
		host, key, origin, wsVersion []byte
		hasHost, hasKey, hasVersion  bool
		upgradeOK, connectionOK      bool
	)
	for len(head) > 0 {
		i := bytes.Index(head, crlf)
		line := head[:i]
		head = head[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return u, 0, badRequest("malformed header line")
		}
		name := line[:colon]
		value := trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return u, 0, badRequest("malformed header value")
		}
		switch {
		case equalFold(name, "Host"):
			if hasHost {
				return u, 0, badRequest("duplicate Host")
			}
			host, hasHost = value, true
		case equalFold(name, "Upgrade"):
			upgradeOK = upgradeOK || hasToken(value, "websocket")
		case equalFold(name, "Connection"):
			connectionOK = connectionOK || hasToken(value, "upgrade")
		case equalFold(name, "Sec-WebSocket-Key"):
			if hasKey {
				return u, 0, badRequest("duplicate Sec-WebSocket-Key")
			}
			key, hasKey = value, true
		case equalFold(name, "Sec-WebSocket-Version"):
			if hasVersion && string(wsVersion) != string(value) {
				wsVersion = nil // conflicting values: refuse below
			} else {
				wsVersion = value
			}
			hasVersion = true
		case equalFold(name, "Origin"):
			origin = value
		}
	}

	if string(method) != "GET" {
		return u, 0, &HTTPError{Status: 405, Reason: "method not allowed"}
	}
	if !hasHost || len(host) == 0 {
		return u, 0, badRequest("missing Host")
	}
	if !upgradeOK {
		return u, 0, badRequest("missing Upgrade: websocket")
	}
	if !connectionOK {
		return u, 0, badRequest("missing Connection: upgrade")
	}
	if string(wsVersion) != "13" {
		return u, 0, &HTTPError{Status: 426, Reason: "unsupported Sec-WebSocket-Version (want 13)"}
	}
	if !validKey(key) {
		return u, 0, badRequest("missing or malformed Sec-WebSocket-Key")
	}

	path, query := target, []byte(nil)
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, query = target[:q], target[q+1:]
	}

	// One allocation for every string field.
	var sb strings.Builder
	sb.Grow(len(method) + len(path) + len(query) + len(host) + len(key) + len(origin))
	sb.Write(method)
	sb.Write(path)
	sb.Write(query)
	sb.Write(host)
	sb.Write(key)
	sb.Write(origin)
	s := sb.String()
	cut := func(k int) string {
		v := s[:k]
		s = s[k:]
		return v
	}
	u.Method = cut(len(method))
	u.Path = cut(len(path))
	u.Query = cut(len(query))
	u.Host = cut(len(host))
	u.Key = cut(len(key))
	u.Origin = cut(len(origin))
	return u, n, nil
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// hasBareLF reports whether b holds an LF not preceded by CR.
func hasBareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

func badRequest(reason string) *HTTPError {
	return &HTTPError{Status: 400, Reason: reason}
}

// tokenChars marks RFC 9110 tchar bytes.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validTarget accepts an origin-form or absolute-form request-target: visible
// ASCII only.
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue rejects control characters (CR, LF, NUL...) in a header
// value; obs-text (>= 0x80) and HTAB are allowed.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 {
			return false
		}
		if c|0x20 < 'a' || c|0x20 > 'z' {
			if c != d {
				return false
			}
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok (case-insensitive).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if equalFold(trimOWS(item), tok) {
			return true
		}
	}
	return false
}

// validKey reports whether k is the base64 encoding of exactly 16 bytes.
func validKey(k []byte) bool {
	if len(k) != 24 {
		return false
	}
	var dec [18]byte
	n, err := base64.StdEncoding.Decode(dec[:], k)
	return err == nil && n == 16
}

// AppendUpgradeResponse appends the 101 Switching Protocols response for a
// request whose Sec-WebSocket-Key is key. No extension or subprotocol is
// selected.
func AppendUpgradeResponse(dst []byte, key string) []byte {
	var buf [24 + len(acceptGUID)]byte
	src := buf[:0]
	if len(key) == 24 {
		src = append(src, key...)
	} else {
		src = append(make([]byte, 0, len(key)+len(acceptGUID)), key...)
	}
	src = append(src, acceptGUID...)
	sum := sha1.Sum(src) //nolint:gosec // G401: required by RFC 6455, not used for security
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\n"+
		"Connection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "...)
	dst = base64.StdEncoding.AppendEncode(dst, sum[:])
	return append(dst, "\r\n\r\n"...)
}

// AppendHTTPError appends a complete HTTP/1.1 error response: the status line
// with the standard reason phrase for status, Connection: close,
// Content-Type: text/plain, Content-Length and reason as the body (the reason
// phrase when reason is empty). A 426 response also carries
// Sec-WebSocket-Version: 13 and a 405 one Allow: GET. The caller closes the connection after writing it.
func AppendHTTPError(dst []byte, status int, reason string) []byte {
	text := statusText(status)
	if reason == "" {
		reason = text
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, text...)
	dst = append(dst, "\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"...)
	switch status {
	case 405:
		dst = append(dst, "Allow: GET\r\n"...)
	case 426:
		dst = append(dst, "Sec-WebSocket-Version: 13\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(reason)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, reason...)
}

// statusText is the reason phrase for the statuses a WebSocket endpoint sends
// before the upgrade (net/http is not imported for this alone).
func statusText(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 426:
		return "Upgrade Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	}
	return "Error"
}
