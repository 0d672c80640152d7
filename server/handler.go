package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"imgate/codec"
)

// handler implements gnet.EventHandler. Every callback runs on an event loop and never
// blocks: store, broker and registry work is handed to other goroutines.
type handler struct {
	gnet.BuiltinEventEngine
	srv *Server
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.srv.booted(eng)
	return gnet.None
}

func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.srv
	l := s.loopOf(gc.EventLoop())
	now := time.Now().UnixNano()
	l.now = now
	c := &conn{gc: gc, loop: l, id: s.nextConnID(), timer: now + int64(s.cfg.InitTimeout)}
	c.parser.MaxMessage = s.cfg.MaxMessageBytes
	gc.SetContext(c)
	l.addConn(c)
	s.stats.open.Add(1)
	if s.draining.Load() {
		return appendHTTPError(nil, 503, "node is draining"), gnet.Close
	}
	if ip := remoteIP(gc.RemoteAddr()); !s.pending.add(ip) {
		s.countClose(closePendingCap)
		c.state = stateClosing
		if s.pendingWarn.Allow() {
			s.log.Warn("connection refused: too many connections from one IP before CONNECT_INIT (logged at most every 10s)",
				"ip", ip, "max_pending_per_ip", s.cfg.MaxPendingPerIP, "refused", s.stats.closes[closePendingCap].Load())
		}
		return appendHTTPError(nil, 503, "too many connections from this address awaiting CONNECT_INIT"), gnet.Close
	}
	c.pending = true
	return nil, gnet.None
}

// initDone uncounts c from the pending connections of its IP: it sent CONNECT_INIT or
// closed. It runs on c's loop.
func (s *Server) initDone(c *conn) {
	if c.pending {
		c.pending = false
		s.pending.done(remoteIP(c.gc.RemoteAddr()))
	}
}

func (h *handler) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	s := h.srv
	if c.state != stateClosing {
		s.countClose(closeReset)
	}
	wasBound := c.user != "" && !c.closed
	s.initDone(c)
	c.closed = true
	c.state = stateClosing
	c.loop.removeConn(c)
	s.stats.open.Add(-1)
	if wasBound {
		s.unbind(c)
	}
	return gnet.None
}

func (h *handler) OnTick() (time.Duration, gnet.Action) {
	h.srv.tick()
	return h.srv.cfg.TickInterval, gnet.None
}

func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok || c.state == stateClosing {
		_, _ = gc.Discard(-1)
		return gnet.None
	}
	l := c.loop
	l.now = time.Now().UnixNano()
	buf, err := gc.Peek(-1)
	if err != nil {
		return gnet.Close
	}
	used := 0
	limit := h.srv.cfg.MaxOutboundBytes
	for used < len(buf) && c.state != stateClosing {
		// Replies count against the outbound bound too: a client that sends and never
		// reads must not make the node buffer its answers without limit.
		if len(l.out)+c.gc.OutboundBuffered() > limit {
			l.closeConn(c, closeSlowConsumer)
			break
		}
		var n int
		if c.state == stateHandshake {
			n = h.srv.handshake(c, buf[used:])
		} else {
			n = h.srv.frame(c, buf[used:])
		}
		if n == 0 {
			break
		}
		used += n
	}
	if used > 0 { // gnet's Discard(n <= 0) drops every buffered byte
		_, _ = gc.Discard(used)
	}
	if c.state == stateClosing {
		return gnet.None // closeConn flushed l.out and closed the connection
	}
	l.flush(c)
	return gnet.None
}

// handshake parses the upgrade request at the start of b and answers it. It returns the
// bytes consumed, 0 when the request is not complete yet.
func (s *Server) handshake(c *conn, b []byte) int {
	l := c.loop
	u, n, err := codec.ParseUpgrade(b)
	if errors.Is(err, codec.ErrIncomplete) {
		return 0
	}
	var herr *codec.HTTPError
	if errors.As(err, &herr) {
		s.refuseUpgrade(c, herr.Status, herr.Reason, "")
		return len(b)
	}
	if err != nil {
		s.refuseUpgrade(c, 400, err.Error(), "")
		return len(b)
	}
	if u.Path != s.cfg.Path {
		s.refuseUpgrade(c, 404, "not found", "path "+strconv.Quote(u.Path))
		return len(b)
	}
	if !s.origins.Load().allows(u.Origin) {
		if s.originWarn.Allow() {
			s.log.Warn("websocket upgrade refused: Origin not allowed (--allowed-origins; logged at most every 10s)",
				"origin", u.Origin, "refused", s.stats.closes[closeOrigin].Load()+1)
		}
		l.out = appendHTTPError(l.out, 403, "origin not allowed")
		l.closeConn(c, closeOrigin)
		return len(b)
	}
	l.out = codec.AppendUpgradeResponse(l.out, u.Key)
	c.state = stateAwaitInit
	return n
}

// frame parses one frame at the start of b and acts on it. It returns the bytes
// consumed, 0 when no whole frame is buffered yet.
func (s *Server) frame(c *conn, b []byte) int {
	l := c.loop
	f, n, err := c.parser.Next(b)
	if err != nil {
		var ce *codec.CloseError
		if errors.As(err, &ce) {
			l.closeConn(c, reasonForCode(ce.Code))
		} else {
			l.closeConn(c, closeProtocol)
		}
		return len(b)
	}
	if n == 0 {
		return 0
	}
	if c.state == stateBound {
		s.refill(c, l.now)
	}
	switch f.Kind {
	case codec.KindText:
		s.message(c, f.Payload)
	case codec.KindBinary:
		l.closeConn(c, closeUnsupported)
	case codec.KindPing:
		l.out = codec.AppendFrame(l.out, ws.OpPong, f.Payload)
	case codec.KindClose:
		// Echo the client's code (none when it sent none), then close the TCP connection.
		l.out = codec.AppendClose(l.out, f.Code, "")
		s.countClose(closeNormal)
		c.state = stateClosing
		l.flush(c)
		_ = c.gc.Close()
	}
	return n
}
