package server_test

// The conformance suite drives a running node over TCP with hand-made frames, one case
// per rule of PROTOCOL §2 (and the close codes of §4), grouped like the Autobahn
// TestSuite. A case is a table row: the bytes the client writes (in one write each, or
// chopped one byte per write) and what the server must answer, in order. The reader is
// strict: the next frame must be the one expected, so an extra or missing answer fails.
// Run it with:
//
//	go test -race -v -run Conformance ./server/

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// confPhase is where a case's connection starts.
type confPhase uint8

const (
	phaseBound    confPhase = iota // upgraded and bound with CONNECT_INIT (the default)
	phaseUpgraded                  // upgraded, no CONNECT_INIT yet
	phaseTCP                       // plain TCP: the case sends the upgrade request itself
)

// chunk is bytes the client sends: in one write, or one byte per write when chopped
// (the client sets TCP_NODELAY, Go's default, so every write is its own segment).
type chunk struct {
	b       []byte
	chopped bool
	// pause paces a case that is about time (idle timer kept alive by pings): the
	// client waits this long before writing. It never waits for a condition.
	pause time.Duration
}

// wantKind is what the server must do next.
type wantKind uint8

const (
	wantEnvelope wantKind = iota // a text message holding an envelope of msgType
	wantPong                     // a pong carrying payload
	wantClose                    // a close frame with code (0: empty body), then TCP close
	wantEOF                      // TCP close with no frame
	wantHTTP                     // an HTTP response head with status
	wantDelivery                 // the case's peer receives a WORDS message with msg
)

// want is one expected answer.
type want struct {
	kind      wantKind
	msgType   int           // wantEnvelope
	errCode   string        // wantEnvelope of ERROR (12): error.code
	payload   []byte        // wantPong
	code      ws.StatusCode // wantClose
	status    int           // wantHTTP
	headers   []string      // wantHTTP: lines that must be present ("Name: value", case-insensitive name)
	noHeaders []string      // wantHTTP: header names that must be absent
	msg       string        // wantDelivery
	// notBefore: the answer must not come sooner than this after the last write
	// (timers must not fire early).
	notBefore time.Duration
}

func (w want) String() string {
	switch w.kind {
	case wantEnvelope:
		if w.errCode != "" {
			return "ERROR " + w.errCode
		}
		return "envelope msgType " + strconv.Itoa(w.msgType)
	case wantPong:
		return "pong " + strconv.Quote(string(w.payload))
	case wantClose:
		return "close " + strconv.Itoa(int(w.code))
	case wantEOF:
		return "TCP close"
	case wantHTTP:
		return "HTTP " + strconv.Itoa(w.status)
	case wantDelivery:
		return "delivery of " + strconv.Quote(w.msg)
	}
	return "?"
}

// confCase is one conformance case.
type confCase struct {
	name  string
	phase confPhase
	node  string // key of the group's node map; "" is the group's default node
	// user is the user bound with CONNECT_INIT (default: unique per case). Cases that
	// send content name their user and peer: a content message reaches every device of
	// its sender, so users must not be shared between parallel cases.
	user string
	peer string // when set, a second connection bound as peer receives wantDelivery
	send []chunk
	want []want
}

// Constructors of wants.

func answer(msgType int) want     { return want{kind: wantEnvelope, msgType: msgType} }
func errorReply(code string) want { return want{kind: wantEnvelope, msgType: 12, errCode: code} }
func pong(p []byte) want          { return want{kind: wantPong, payload: p} }
func closed(code ws.StatusCode) want {
	return want{kind: wantClose, code: code}
}
func closedEmpty() want { return want{kind: wantClose} }

// closedAfter is closed(code) that must not come sooner than d after the last write.
func closedAfter(code ws.StatusCode, d time.Duration) want {
	return want{kind: wantClose, code: code, notBefore: d}
}

func tcpClosed() want         { return want{kind: wantEOF} }
func delivered(m string) want { return want{kind: wantDelivery, msg: m} }
func httpStatus(status int, headers ...string) want {
	return want{kind: wantHTTP, status: status, headers: headers}
}

// Constructors of chunks and frames.

// one sends the frames in a single write.
func one(frames ...[]byte) chunk { return chunk{b: bytes.Join(frames, nil)} }

// chopped sends the frames one byte per write.
func chopped(frames ...[]byte) chunk { return chunk{b: bytes.Join(frames, nil), chopped: true} }

// both returns c twice: as written, and with every chunk chopped one byte per write.
// Cases that name their users build their chopped variant themselves.
func both(c confCase) []confCase {
	if c.user != "" || c.peer != "" {
		panic("both: case " + c.name + " names its users")
	}
	ch := c
	ch.name += "/chopped"
	ch.send = make([]chunk, len(c.send))
	for i, s := range c.send {
		s.chopped = true
		ch.send[i] = s
	}
	return []confCase{c, ch}
}

func txt(s string) []byte { return frameBytes(true, 0, ws.OpText, []byte(s), true) }

// frag is a text (first) or continuation frame of a fragmented message.
func frag(fin bool, op ws.OpCode, s string) []byte {
	return frameBytes(fin, 0, op, []byte(s), true)
}

func pingF(p []byte) []byte { return frameBytes(true, 0, ws.OpPing, p, true) }
func pongF(p []byte) []byte { return frameBytes(true, 0, ws.OpPong, p, true) }

// closeF is a close frame with code and reason.
func closeF(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return frameBytes(true, 0, ws.OpClose, append(p, reason...), true)
}

// headerOnly is the header of a masked frame announcing length payload bytes, without
// the payload.
func headerOnly(fin bool, op ws.OpCode, length uint64) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch {
	case length <= 125:
		out = append(out, 0x80|byte(length))
	case length <= 0xffff:
		out = append(out, 0x80|126, byte(length>>8), byte(length))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, length)
	}
	return append(out, 0x12, 0x34, 0x56, 0x78)
}

// keepalive is a KEEPALIVE envelope of exactly n bytes (n >= 34), padded with an
// unknown top-level member the server must ignore.
func keepalive(n int) string {
	// The padding is an unknown top-level member (ignored): unknown chatMsg members
	// are bounded to 4 KiB (codec.MaxExtraBytes).
	const head, tail = `{"pad":"`, `","chatMsg":{"msgType":9}}`
	if n < len(head)+len(tail) {
		panic("keepalive: too short")
	}
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// ka is the shortest KEEPALIVE.
var ka = keepalive(34)

// words is a WORDS message from user to peer.
func words(from, to, msg string) string {
	b, err := json.Marshal(map[string]any{"chatMsg": map[string]any{
		"senderId": from, "receiverId": to, "msg": msg, "msgType": 1, "clientMsgId": "conf-" + from,
	}})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// initMsg is the CONNECT_INIT of user.
func initMsg(user string) string {
	return `{"chatMsg":{"senderId":"` + user + `","msgType":0}}`
}

// confKey is the RFC 6455 §1.3 sample key and its accept value.
const (
	confKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	confAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// upgradeReq is an upgrade request for path with the sample key and extra header lines.
func upgradeReq(path string, extra ...string) []byte {
	s := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + confKey + "\r\nSec-WebSocket-Version: 13\r\n"
	for _, e := range extra {
		s += e + "\r\n"
	}
	return []byte(s + "\r\n")
}

// switched is the 101 answer to upgradeReq.
func switched() want {
	w := httpStatus(101, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: "+confAccept)
	w.noHeaders = []string{"Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"}
	return w
}

// runConformance runs every case as a parallel subtest on the group's nodes.
func runConformance(t *testing.T, nodes map[string]*testNode, cases []confCase) {
	t.Helper()
	seen := map[string]bool{}
	for i, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		n := nodes[tc.node]
		if n == nil {
			t.Fatalf("case %q: no node %q", tc.name, tc.node)
		}
		user := tc.user
		if user == "" {
			user = t.Name() + "-" + strconv.Itoa(i)
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, n, user, tc)
		})
	}
}

func runCase(t *testing.T, n *testNode, user string, tc confCase) {
	var c *rawClient
	switch tc.phase {
	case phaseBound:
		c, _ = login(t, n.addr, user, -1)
	case phaseUpgraded:
		c = dialWS(t, n.addr)
	case phaseTCP:
		c = dialRaw(t, n.addr)
	}
	var peer *rawClient
	if tc.peer != "" {
		peer, _ = login(t, n.addr, tc.peer, -1)
	}
	for _, ch := range tc.send {
		if !c.sendChunk(t, ch) {
			break // the server closed; the wants tell whether it was right to
		}
	}
	sent := time.Now()
	for i, w := range tc.want {
		if err := c.check(w, peer); err != nil {
			t.Fatalf("want[%d] %v: %v", i, w, err)
		}
		if d := time.Since(sent); d < w.notBefore {
			t.Fatalf("want[%d] %v came after %v, before %v", i, w, d, w.notBefore)
		}
	}
}

// sendChunk writes ch; it reports false when the server closed the connection meanwhile.
func (c *rawClient) sendChunk(t *testing.T, ch chunk) bool {
	if ch.pause > 0 {
		time.Sleep(ch.pause) // pacing, see chunk.pause
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if !ch.chopped {
		if _, err := c.nc.Write(ch.b); err != nil {
			t.Logf("write: %v", err)
			return false
		}
		return true
	}
	for i := range ch.b {
		if _, err := c.nc.Write(ch.b[i : i+1]); err != nil {
			t.Logf("write byte %d of %d: %v", i, len(ch.b), err)
			return false
		}
	}
	return true
}

// confTimeout bounds every read of the suite.
const confTimeout = 5 * time.Second

// check reads the server's next answer and compares it with w.
func (c *rawClient) check(w want, peer *rawClient) error {
	switch w.kind {
	case wantHTTP:
		return c.checkHTTP(w)
	case wantEOF:
		return c.checkEOF()
	case wantDelivery:
		if peer == nil {
			return errors.New("case has no peer")
		}
		f, err := peer.readFrame(confTimeout)
		if err != nil {
			return err
		}
		e, err := decodeFrame(f)
		if err != nil {
			return err
		}
		if e.msgType() != 1 || e.str("msg") != w.msg || e.str("msgId") == "" {
			return errors.New("peer got " + string(f.payload))
		}
		return nil
	}
	f, err := c.readFrame(confTimeout)
	if err != nil {
		return err
	}
	switch w.kind {
	case wantPong:
		if f.op != ws.OpPong || !f.fin || !bytes.Equal(f.payload, w.payload) {
			return errors.New("got " + describe(f))
		}
	case wantClose:
		if f.op != ws.OpClose {
			return errors.New("got " + describe(f))
		}
		if w.code == 0 {
			if len(f.payload) != 0 {
				return errors.New("want an empty close body, got " + describe(f))
			}
		} else if len(f.payload) < 2 || ws.StatusCode(binary.BigEndian.Uint16(f.payload)) != w.code {
			return errors.New("got " + describe(f))
		}
		if !utf8.Valid(f.payload[min(2, len(f.payload)):]) {
			return errors.New("close reason is not UTF-8: " + describe(f))
		}
		return c.checkEOF()
	case wantEnvelope:
		e, err := decodeFrame(f)
		if err != nil {
			return err
		}
		if e.msgType() != w.msgType {
			return errors.New("got " + describe(f))
		}
		if w.errCode != "" && (e.Error == nil || e.Error.Code != w.errCode) {
			return errors.New("got " + describe(f))
		}
	}
	return nil
}

// checkEOF expects the server to close TCP with no further frame.
func (c *rawClient) checkEOF() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(confTimeout))
	var buf [512]byte
	n, err := io.ReadFull(c.br, buf[:1])
	if n > 0 {
		rest, _ := c.br.Read(buf[1:])
		return errors.New("want TCP close, got more bytes " + strconv.Quote(string(buf[:1+rest])))
	}
	if errors.Is(err, io.EOF) || isReset(err) {
		return nil
	}
	return errors.New("want TCP close, got " + err.Error())
}

// checkHTTP reads an HTTP response head and checks its status and headers.
func (c *rawClient) checkHTTP(w want) error {
	_ = c.nc.SetReadDeadline(time.Now().Add(confTimeout))
	status, err := c.br.ReadString('\n')
	if err != nil {
		return errors.New("read status line: " + err.Error())
	}
	if !strings.HasPrefix(status, "HTTP/1.1 "+strconv.Itoa(w.status)+" ") {
		return errors.New("status line " + strconv.Quote(status))
	}
	var hdrs []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return errors.New("read header: " + err.Error())
		}
		if line == "\r\n" {
			break
		}
		hdrs = append(hdrs, strings.TrimRight(line, "\r\n"))
	}
	has := func(name, value string) bool {
		for _, h := range hdrs {
			k, v, ok := strings.Cut(h, ":")
			if ok && strings.EqualFold(k, name) && (value == "" || strings.TrimSpace(v) == value) {
				return true
			}
		}
		return false
	}
	for _, h := range w.headers {
		k, v, _ := strings.Cut(h, ":")
		if !has(k, strings.TrimSpace(v)) {
			return errors.New("missing header " + strconv.Quote(h) + " in " + strings.Join(hdrs, " | "))
		}
	}
	for _, k := range w.noHeaders {
		if has(k, "") {
			return errors.New("unexpected header " + k + " in " + strings.Join(hdrs, " | "))
		}
	}
	// Skip the body so that a following want reads what comes after it.
	for _, h := range hdrs {
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return errors.New("bad Content-Length " + strconv.Quote(v))
			}
			if _, err := io.CopyN(io.Discard, c.br, int64(n)); err != nil {
				return errors.New("read body: " + err.Error())
			}
		}
	}
	return nil
}

func decodeFrame(f serverFrame) (envelope, error) {
	var e envelope
	if f.op != ws.OpText || !f.fin {
		return e, errors.New("want a text frame, got " + describe(f))
	}
	if err := json.Unmarshal(f.payload, &e); err != nil {
		return e, errors.New("decode " + strconv.Quote(string(f.payload)) + ": " + err.Error())
	}
	return e, nil
}

func describe(f serverFrame) string {
	p := f.payload
	s := "op " + strconv.Itoa(int(f.op)) + " fin " + strconv.FormatBool(f.fin) + " len " + strconv.Itoa(len(p))
	if f.op == ws.OpClose && len(p) >= 2 {
		s += " code " + strconv.Itoa(int(binary.BigEndian.Uint16(p))) + " reason " + strconv.Quote(string(p[2:]))
	} else if len(p) > 200 {
		s += " payload " + strconv.Quote(string(p[:200])) + "..."
	} else {
		s += " payload " + strconv.Quote(string(p))
	}
	return s
}
