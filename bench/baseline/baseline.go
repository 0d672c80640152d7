// Package baseline is the reference server imgate is compared with: the design most Go teams
// write first. It speaks the subset of PROTOCOL.md a load test needs, on gorilla/websocket,
// with two goroutines per connection (a reader, and a writer draining a buffered channel) and
// one mutex-protected map of sessions. It keeps nothing: no store, no replay, no cluster.
//
// Protocol subset: CONNECT_INIT (first message, else close 4400) → ACK with extend = connection
// id; a content message (msgType 1–4) gets msgId and chatTime, is queued to every connection of
// the receiver and to the sender's other connections (unknown chatMsg fields kept, extend =
// sender's connection id), then ACKed to the sender; SIGNED is passed to the receiverId's
// connections; KEEPALIVE is answered with KEEPALIVE; init timeout 10 s and idle timeout 60 s
// close with 4408; a full outbound queue (256 messages) closes with 4503. It also answers
// GET /api/v1/nodes/pick (and POST /getNettyOnlineInfo) with itself, so clients can start at the
// dispatcher step.
//
// Run it with `imgate bench baseline --addr 127.0.0.1:9001` or
// `go run ./bench/baseline/cmd/baseline --addr 127.0.0.1:9001`.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	initTimeout = 10 * time.Second
	idleTimeout = 60 * time.Second
	writeWait   = 10 * time.Second
	maxMessage  = 64 << 10
	queueLen    = 256
)

// Server is a running baseline server.
type Server struct {
	ln       net.Listener
	http     *http.Server
	upgrader websocket.Upgrader
	epoch    int64
	seq      atomic.Int64
	connSeq  atomic.Uint64

	mu       sync.Mutex
	sessions map[string]map[*client]struct{} // user → connections
	all      map[*client]struct{}
}

type client struct {
	s     *Server
	ws    *websocket.Conn
	id    string
	user  string
	send  chan []byte
	quit  chan struct{}
	once  sync.Once
	code  int
	cause string
}

// Listen binds addr and serves in the background until Close.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	s := &Server{
		ln:       ln,
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true }},
		epoch:    time.Now().UnixMilli() << 22,
		sessions: map[string]map[*client]struct{}{},
		all:      map[*client]struct{}{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /api/v1/nodes/pick", s.servePick)
	mux.HandleFunc("POST /getNettyOnlineInfo", s.servePick)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: initTimeout}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the WebSocket URL of the server.
func (s *Server) URL() string { return "ws://" + s.ln.Addr().String() + "/ws" }

// Close stops listening and closes every connection with 1001.
func (s *Server) Close() error {
	err := s.http.Close()
	s.mu.Lock()
	for c := range s.all {
		c.kill(websocket.CloseGoingAway, "server stopping")
	}
	s.mu.Unlock()
	return err
}

// Online returns the number of bound connections.
func (s *Server) Online() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.sessions {
		n += len(m)
	}
	return n
}

func (s *Server) servePick(w http.ResponseWriter, r *http.Request) {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": 200, "msg": "OK", "success": true, "data": map[string]any{
		"ip": host, "port": p, "onlineCounts": s.Online(), "nodeId": "baseline", "wsUrl": s.URL(),
	}})
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{s: s, ws: ws, id: "c-" + strconv.FormatUint(s.connSeq.Add(1), 10),
		send: make(chan []byte, queueLen), quit: make(chan struct{})}
	s.mu.Lock()
	s.all[c] = struct{}{}
	s.mu.Unlock()
	go c.writeLoop()
	c.readLoop()
}

// envelope is the decoded DataContent; chatMsg stays raw so unknown fields survive.
type envelope struct {
	ChatMsg map[string]json.RawMessage `json:"chatMsg"`
}

func (e *envelope) str(k string) string {
	var v string
	_ = json.Unmarshal(e.ChatMsg[k], &v)
	return v
}

func (e *envelope) msgType() int {
	v, ok := e.ChatMsg["msgType"]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return -1
	}
	return n
}

func (c *client) readLoop() {
	defer c.unregister()
	ws := c.ws
	ws.SetReadLimit(maxMessage)
	_ = ws.SetReadDeadline(time.Now().Add(initTimeout))
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(idleTimeout))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.kill(4408, "timeout")
			} else {
				c.kill(websocket.CloseNormalClosure, "")
			}
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(idleTimeout))
		if typ != websocket.TextMessage {
			c.kill(websocket.CloseUnsupportedData, "binary")
			return
		}
		var e envelope
		if err := json.Unmarshal(data, &e); err != nil || e.ChatMsg == nil {
			if c.user == "" {
				c.kill(4400, "bad CONNECT_INIT")
				return
			}
			c.reply(nil, "bad_json", "")
			continue
		}
		if c.user == "" {
			if e.msgType() != 0 || e.str("senderId") == "" {
				c.kill(4400, "first message is not CONNECT_INIT")
				return
			}
			c.user = e.str("senderId")
			c.register()
			c.reply(map[string]any{"senderId": c.user, "msgType": 11}, "", c.id)
			continue
		}
		c.handle(&e)
	}
}

func (c *client) handle(e *envelope) {
	cmid := e.str("clientMsgId")
	switch t := e.msgType(); t {
	case 9:
		c.reply(map[string]any{"senderId": c.user, "msgType": 9}, "", "")
	case 1, 2, 3, 4, 8:
		if e.str("senderId") != c.user {
			c.reply(map[string]any{"msgType": 12, "clientMsgId": cmid}, "forbidden", "")
			return
		}
		recv := e.str("receiverId")
		if recv == "" {
			c.reply(map[string]any{"msgType": 12, "clientMsgId": cmid}, "bad_request", "")
			return
		}
		id := strconv.FormatInt(c.s.epoch+c.s.seq.Add(1), 10)
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
		e.ChatMsg["msgId"], _ = json.Marshal(id)
		e.ChatMsg["chatTime"], _ = json.Marshal(now)
		out, _ := json.Marshal(map[string]any{"chatMsg": e.ChatMsg, "extend": c.id})
		for _, to := range c.s.targets(recv, c.user, c, t != 8) {
			to.enqueue(out)
		}
		if t != 8 {
			c.reply(map[string]any{"senderId": c.user, "receiverId": recv, "msgType": 11,
				"msgId": id, "clientMsgId": cmid, "chatTime": now}, "", "")
		}
	default:
		c.reply(map[string]any{"msgType": 12, "clientMsgId": cmid}, "bad_type", "")
	}
}

// targets returns the connections of recv and, when withSender, sender's other connections.
func (s *Server) targets(recv, sender string, self *client, withSender bool) []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*client, 0, len(s.sessions[recv])+len(s.sessions[sender]))
	for c := range s.sessions[recv] {
		if c != self {
			out = append(out, c)
		}
	}
	if withSender && sender != recv {
		for c := range s.sessions[sender] {
			if c != self {
				out = append(out, c)
			}
		}
	}
	return out
}

// reply queues an envelope to c: an ERROR when code is set.
func (c *client) reply(cm map[string]any, code, extend string) {
	env := map[string]any{}
	if cm == nil {
		cm = map[string]any{"msgType": 12}
	}
	env["chatMsg"] = cm
	if code != "" {
		env["error"] = map[string]string{"code": code, "message": code}
	}
	if extend != "" {
		env["extend"] = extend
	}
	b, _ := json.Marshal(env)
	c.enqueue(b)
}

func (c *client) enqueue(b []byte) {
	select {
	case c.send <- b:
	case <-c.quit:
	default:
		c.kill(4503, "slow consumer")
	}
}

func (c *client) kill(code int, reason string) {
	c.once.Do(func() {
		c.code, c.cause = code, reason
		close(c.quit)
	})
}

func (c *client) writeLoop() {
	defer c.ws.Close()
	for {
		select {
		case b := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.kill(websocket.CloseAbnormalClosure, "write")
				return
			}
		case <-c.quit:
			if c.code != websocket.CloseAbnormalClosure {
				msg := websocket.FormatCloseMessage(c.code, c.cause)
				_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			}
			return
		}
	}
}

func (c *client) register() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.sessions[c.user]
	if m == nil {
		m = map[*client]struct{}{}
		s.sessions[c.user] = m
	}
	m[c] = struct{}{}
}

func (c *client) unregister() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, c)
	if m := s.sessions[c.user]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(s.sessions, c.user)
		}
	}
}

// Main runs the baseline server until ctx ends: `--addr host:port` (default 127.0.0.1:9001).
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9001", "listen address; WebSocket path /ws, node pick at /api/v1/nodes/pick")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	s, err := Listen(*addr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "baseline: serving %s (dispatcher http://%s)\n", s.URL(), s.Addr())
	<-ctx.Done()
	_ = s.Close()
	return 0
}
