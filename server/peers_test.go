package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"imgate/server"
)

// peer is a client built on a third-party WebSocket library, seen through what the
// test needs: send a text message, read the next one, ping, close cleanly.
type peer interface {
	write(ctx context.Context, b []byte) error
	read(ctx context.Context) ([]byte, error)
	// ping sends a ping with payload p and returns once its pong came back.
	ping(ctx context.Context, p string) error
	// closeNormal sends close 1000 and returns nil once the server echoed 1000.
	closeNormal(ctx context.Context) error
}

// gorillaPeer is a gorilla/websocket client. Control frames are handled inside
// ReadMessage, so ping waits for its pong while reading the answer of a KEEPALIVE.
type gorillaPeer struct {
	c     *gorilla.Conn
	pongs chan string
}

func dialGorilla(t *testing.T, ctx context.Context, url string) *gorillaPeer {
	t.Helper()
	c, resp, err := gorilla.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatalf("gorilla dial %s: %v", url, err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("gorilla: extension negotiated: %q", ext)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &gorillaPeer{c: c, pongs: make(chan string, 4)}
	c.SetPongHandler(func(data string) error { p.pongs <- data; return nil })
	return p
}

func (p *gorillaPeer) write(ctx context.Context, b []byte) error {
	d, _ := ctx.Deadline()
	_ = p.c.SetWriteDeadline(d)
	return p.c.WriteMessage(gorilla.TextMessage, b)
}

func (p *gorillaPeer) read(ctx context.Context) ([]byte, error) {
	d, _ := ctx.Deadline()
	_ = p.c.SetReadDeadline(d)
	typ, b, err := p.c.ReadMessage()
	if err == nil && typ != gorilla.TextMessage {
		return nil, errors.New("gorilla: message type " + strconv.Itoa(typ))
	}
	return b, err
}

func (p *gorillaPeer) ping(ctx context.Context, payload string) error {
	d, _ := ctx.Deadline()
	if err := p.c.WriteControl(gorilla.PingMessage, []byte(payload), d); err != nil {
		return err
	}
	// The pong is processed by the next read: ask for a KEEPALIVE and read its answer.
	if err := p.write(ctx, []byte(ka)); err != nil {
		return err
	}
	if _, err := p.read(ctx); err != nil {
		return err
	}
	select {
	case got := <-p.pongs:
		if got != payload {
			return errors.New("gorilla: pong " + strconv.Quote(got) + ", want " + strconv.Quote(payload))
		}
		return nil
	default:
		return errors.New("gorilla: no pong before the KEEPALIVE answer")
	}
}

func (p *gorillaPeer) closeNormal(ctx context.Context) error {
	d, _ := ctx.Deadline()
	msg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "bye")
	if err := p.c.WriteControl(gorilla.CloseMessage, msg, d); err != nil {
		return err
	}
	_ = p.c.SetReadDeadline(d)
	for {
		_, _, err := p.c.ReadMessage()
		var ce *gorilla.CloseError
		if errors.As(err, &ce) {
			if ce.Code != gorilla.CloseNormalClosure {
				return errors.New("gorilla: server closed with " + strconv.Itoa(ce.Code))
			}
			// The server then closes TCP.
			if _, err := p.c.UnderlyingConn().Read(make([]byte, 1)); err == nil {
				return errors.New("gorilla: bytes after the close frame")
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// coderPeer is a coder/websocket client. Its Ping needs a concurrent Read, which
// coderPeer runs for the whole connection and hands messages over a channel.
type coderPeer struct {
	c    *coder.Conn
	msgs chan coderMsg
}

type coderMsg struct {
	b   []byte
	err error
}

func dialCoder(t *testing.T, ctx context.Context, url string) *coderPeer {
	t.Helper()
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{CompressionMode: coder.CompressionContextTakeover})
	if err != nil {
		t.Fatalf("coder dial %s: %v", url, err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("coder: extension negotiated although offered: %q", ext)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	p := &coderPeer{c: c, msgs: make(chan coderMsg, 16)}
	go func() {
		for {
			typ, b, err := c.Read(context.Background())
			if err == nil && typ != coder.MessageText {
				err = errors.New("coder: message type " + typ.String())
			}
			p.msgs <- coderMsg{b, err}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *coderPeer) write(ctx context.Context, b []byte) error {
	return p.c.Write(ctx, coder.MessageText, b)
}

func (p *coderPeer) read(ctx context.Context) ([]byte, error) {
	select {
	case m := <-p.msgs:
		return m.b, m.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ping: coder chooses the payload (a counter) and matches the pong to it itself.
func (p *coderPeer) ping(ctx context.Context, _ string) error { return p.c.Ping(ctx) }

// closeNormal: coder's Close returns nil only when the peer's close frame carries the
// code it sent.
func (p *coderPeer) closeNormal(context.Context) error {
	if err := p.c.Close(coder.StatusNormalClosure, "bye"); err != nil {
		return err
	}
	// The reader goroutine ends with the close.
	<-p.msgs
	return nil
}

// TestConformancePeers runs the happy path with two independent client libraries as
// real peers: gorilla/websocket and coder/websocket each bind with CONNECT_INIT, send a
// WORDS message to a user on the other library, get the ACK and the delivery with the
// contract's fields, ping through the library and close cleanly (1000 echoed).
func TestConformancePeers(t *testing.T) {
	t.Parallel()
	n := startNode(t, server.Config{}, newMemInbox())
	url := "ws://" + n.addr + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	g := dialGorilla(t, ctx, url)
	c := dialCoder(t, ctx, url)
	peers := []struct {
		name, user string
		p          peer
		connID     string
	}{
		{name: "gorilla", user: "peer-gorilla", p: g},
		{name: "coder", user: "peer-coder", p: c},
	}
	for i := range peers {
		pc := &peers[i]
		t.Run(pc.name+" CONNECT_INIT", func(t *testing.T) {
			ack := peerRoundTrip(t, ctx, pc.p, map[string]any{"chatMsg": map[string]any{"senderId": pc.user, "msgType": 0}})
			if ack.msgType() != 11 || ack.str("senderId") != pc.user || ack.Extend == "" {
				t.Fatalf("init ack %+v", ack)
			}
			pc.connID = ack.Extend
		})
	}
	if t.Failed() {
		return
	}
	for i := range peers {
		from, to := &peers[i], &peers[1-i]
		t.Run(from.name+" to "+to.name, func(t *testing.T) {
			cid := "cid-" + from.name
			msg := "hello from " + from.name + " 😀 你好"
			ack := peerRoundTrip(t, ctx, from.p, map[string]any{"chatMsg": map[string]any{
				"senderId": from.user, "receiverId": to.user, "msg": msg, "msgType": 1,
				"clientMsgId": cid, "media": map[string]any{"w": 640, "tags": []any{"a", "b"}},
			}})
			if ack.msgType() != 11 || ack.str("clientMsgId") != cid || ack.str("chatTime") == "" {
				t.Fatalf("ack %+v", ack)
			}
			id, ok := ack.ChatMsg["msgId"].(string)
			if !ok {
				t.Fatalf("ack msgId is not a string: %#v", ack.ChatMsg["msgId"])
			}
			if _, err := strconv.ParseUint(id, 10, 64); err != nil {
				t.Fatalf("ack msgId %q is not a decimal id: %v", id, err)
			}
			got := peerRead(t, ctx, to.p)
			if got.msgType() != 1 || got.str("msgId") != id || got.str("msg") != msg ||
				got.str("senderId") != from.user || got.str("receiverId") != to.user ||
				got.str("clientMsgId") != cid || got.str("chatTime") != ack.str("chatTime") {
				t.Fatalf("delivery %+v, ack %+v", got, ack)
			}
			if got.seq() != 1+int64(i) {
				// Each user's inbox holds the message it received and the one it sent.
				t.Fatalf("delivery seq %d, want %d", got.seq(), 1+i)
			}
			if got.Extend != from.connID {
				t.Fatalf("delivery extend %q, want the sender's connection id %q", got.Extend, from.connID)
			}
			media, ok := got.ChatMsg["media"].(map[string]any)
			if !ok || media["w"] != float64(640) || len(media["tags"].([]any)) != 2 {
				t.Fatalf("unknown chatMsg field not kept: %#v", got.ChatMsg)
			}
		})
	}
	for i := range peers {
		pc := &peers[i]
		t.Run(pc.name+" ping", func(t *testing.T) {
			if err := pc.p.ping(ctx, "ping-"+pc.name); err != nil {
				t.Fatal(err)
			}
		})
	}
	for i := range peers {
		pc := &peers[i]
		t.Run(pc.name+" KEEPALIVE", func(t *testing.T) {
			if e := peerRoundTrip(t, ctx, pc.p, map[string]any{"chatMsg": map[string]any{"msgType": 9}}); e.msgType() != 9 {
				t.Fatalf("keepalive answer %+v", e)
			}
		})
	}
	for i := range peers {
		pc := &peers[i]
		t.Run(pc.name+" close 1000", func(t *testing.T) {
			if err := pc.p.closeNormal(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	waitFor(t, 5*time.Second, "both peers unbound", func() bool { return n.srv.Online() == 0 })
}

// peerRoundTrip sends v and reads the next envelope.
func peerRoundTrip(t *testing.T, ctx context.Context, p peer, v any) envelope {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write(ctx, b); err != nil {
		t.Fatalf("write: %v", err)
	}
	return peerRead(t, ctx, p)
}

func peerRead(t *testing.T, ctx context.Context, p peer) envelope {
	t.Helper()
	b, err := p.read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return e
}
