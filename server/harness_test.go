package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/server"
)

// testNode is a node started in-process on 127.0.0.1:0 with its store.
type testNode struct {
	srv    *server.Server
	inbox  *memInbox
	outbox *memOutbox
	addr   string
}

// startNode starts a node with cfg (Addr forced to 127.0.0.1:0) on inbox, with an
// outbox that persists into it; a nil inbox runs it live-only. The node is shut down
// when the test ends.
func startNode(t testing.TB, cfg server.Config, inbox *memInbox) *testNode {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.EventLoops == 0 {
		cfg.EventLoops = 2
	}
	n := &testNode{inbox: inbox}
	deps := server.Deps{}
	if inbox != nil {
		n.outbox = newMemOutbox(inbox)
		deps.Outbox, deps.Inbox = n.outbox, inbox
	}
	srv, err := server.New(cfg, deps)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if n.outbox != nil {
		n.outbox.start(srv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	n.srv = srv
	n.addr = srv.Addr().String()
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *testNode) stop(t testing.TB) {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n.outbox != nil {
		n.outbox.stop()
	}
	n.srv = nil
}

// rawClient is a minimal RFC 6455 client over a plain TCP connection: it writes frames
// byte by byte as a test wants them and reads the server's frames.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	// replayed holds the envelopes login read before the ACK of CONNECT_INIT.
	replayed []envelope
}

// dialRaw opens a TCP connection to the node without upgrading.
func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// dialWS opens a connection and completes the upgrade on path /ws.
func dialWS(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.upgrade("/ws")
	return c
}

func upgradeRequest(path, key string, extra ...string) string {
	var hdrs string
	for _, h := range extra {
		hdrs += h + "\r\n"
	}
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + hdrs + "\r\n"
}

func newKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// upgrade sends the upgrade request and checks the 101 answer.
func (c *rawClient) upgrade(path string) {
	c.t.Helper()
	c.write([]byte(upgradeRequest(path, newKey())))
	status, _ := c.readHTTP()
	if !strings.Contains(status, " 101 ") {
		c.t.Fatalf("upgrade: got %q", status)
	}
}

// readHTTP reads an HTTP response head and returns its status line and headers.
func (c *rawClient) readHTTP() (string, []string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read status: %v", err)
	}
	var hdrs []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read header: %v", err)
		}
		if line == "\r\n" {
			return strings.TrimSpace(status), hdrs
		}
		hdrs = append(hdrs, strings.TrimSpace(line))
	}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frameBytes encodes a client frame: masked unless mask is false.
func frameBytes(fin bool, rsv byte, op ws.OpCode, payload []byte, mask bool) []byte {
	b0 := byte(op) | rsv<<4
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var mbit byte
	if mask {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !mask {
		return append(out, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	out = append(out, key[:]...)
	start := len(out)
	out = append(out, payload...)
	ws.Cipher(out[start:], key, 0)
	return out
}

// sendText sends one masked final text frame.
func (c *rawClient) sendText(s string) { c.write(frameBytes(true, 0, ws.OpText, []byte(s), true)) }

// sendJSON marshals v and sends it as a text frame.
func (c *rawClient) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendText(string(b))
}

// serverFrame is one frame read from the server.
type serverFrame struct {
	fin     bool
	op      ws.OpCode
	payload []byte
}

// readFrame reads one server frame within timeout; io.EOF when the server closed TCP.
func (c *rawClient) readFrame(timeout time.Duration) (serverFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return serverFrame{}, err
	}
	if h.Masked {
		return serverFrame{}, errors.New("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{fin: h.Fin, op: h.OpCode, payload: p}, nil
}

// expectClose reads until a close frame and checks its code, then expects TCP EOF.
func (c *rawClient) expectClose(code ws.StatusCode) {
	c.t.Helper()
	for {
		f, err := c.readFrame(5 * time.Second)
		if err != nil {
			c.t.Fatalf("want close %d, got error %v", code, err)
		}
		if f.op != ws.OpClose {
			continue
		}
		got, _ := ws.ParseCloseFrameData(f.payload)
		if got != code {
			c.t.Fatalf("close code: got %d want %d (payload %q)", got, code, f.payload)
		}
		c.expectEOF()
		return
	}
}

// expectEOF checks that the server closes the TCP connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil && !isReset(err) {
		c.t.Fatalf("want EOF, got %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || errors.Is(err, net.ErrClosed))
}

// envelope is the test's view of a DataContent.
type envelope struct {
	ChatMsg    map[string]any `json:"chatMsg"`
	ServerNode map[string]any `json:"serverNode"`
	Extend     string         `json:"extend"`
	// CursorAhead is nil when the member is absent.
	CursorAhead *bool `json:"cursorAhead"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e envelope) msgType() int {
	v, _ := e.ChatMsg["msgType"].(float64)
	return int(v)
}

func (e envelope) str(k string) string {
	v, _ := e.ChatMsg[k].(string)
	return v
}

func (e envelope) seq() int64 {
	v, _ := e.ChatMsg["seq"].(float64)
	return int64(v)
}

// readEnvelope reads the next text message (skipping pongs) and decodes it.
func (c *rawClient) readEnvelope(timeout time.Duration) envelope {
	c.t.Helper()
	for {
		f, err := c.readFrame(timeout)
		if err != nil {
			c.t.Fatalf("read envelope: %v", err)
		}
		if f.op == ws.OpPong {
			continue
		}
		if f.op != ws.OpText {
			c.t.Fatalf("want text frame, got op %v payload %q", f.op, f.payload)
		}
		var e envelope
		if err := json.Unmarshal(f.payload, &e); err != nil {
			c.t.Fatalf("decode %q: %v", f.payload, err)
		}
		return e
	}
}

// expectType reads the next envelope and checks its msgType.
func (c *rawClient) expectType(want int) envelope {
	c.t.Helper()
	e := c.readEnvelope(5 * time.Second)
	if e.msgType() != want {
		c.t.Fatalf("msgType: got %d want %d (%+v)", e.msgType(), want, e)
	}
	return e
}

// login upgrades, sends CONNECT_INIT for user (with cursor when cursor >= 0) and waits
// for its ACK.
func login(t testing.TB, addr, user string, cursor int64) (*rawClient, envelope) {
	t.Helper()
	c := dialWS(t, addr)
	init := map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}}
	if cursor >= 0 {
		init["cursor"] = cursor
	}
	c.sendJSON(init)
	for {
		e := c.readEnvelope(5 * time.Second)
		if e.msgType() == 11 && e.str("msgId") == "" {
			return c, e
		}
		if e.msgType() == 11 {
			continue
		}
		c.replayed = append(c.replayed, e)
	}
}

// send sends a WORDS message from user to peer with clientMsgId cid.
func (c *rawClient) send(from, to, msg, cid string) {
	c.sendJSON(map[string]any{"chatMsg": map[string]any{
		"senderId": from, "receiverId": to, "msg": msg, "msgType": 1, "clientMsgId": cid,
	}})
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
