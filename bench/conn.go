package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"imgate/client"
)

// Connection states.
const (
	stNew int32 = iota
	stBound
	stDropped // closed by the server or by an error while we wanted it open
	stClosing // we started the close
)

// conn is one client connection. The goroutine that runs it (run) is its only reader;
// writes from any goroutine go through wmu.
type conn struct {
	w    *worker
	idx  int32 // index in worker.conns, -1 for churn cycles
	user int32
	dev  int32

	state     atomic.Int32
	delivered atomic.Uint64 // content messages received (per-device figure)

	// owned by the reader goroutine
	nc       net.Conn
	fr       frameReader
	initSent time.Time
	in       inMsg
	cm       centMsg
	extend   string
	// storm scenario (storm.go): cursor is the highest seq seen (sent in CONNECT_INIT);
	// dropAt when the bound connection dropped; rebinding while it is being reconnected.
	cursor    int64
	dropAt    time.Time
	rebinding bool
	lastErr   error // why the last dial failed

	// guarded by wmu
	wmu  sync.Mutex
	wbuf []byte
	pbuf []byte // JSON payload being built
	rnd  uint64 // xorshift state for masks and window-mode picks
}

func (c *conn) userID() string { return c.w.users[c.user] }

// next64 is a xorshift64* step; callers hold wmu.
func (c *conn) next64() uint64 {
	c.rnd ^= c.rnd >> 12
	c.rnd ^= c.rnd << 25
	c.rnd ^= c.rnd >> 27
	return c.rnd * 2685821657736338717
}

// writePayloadLocked frames c.pbuf and writes it; callers hold wmu.
func (c *conn) writeLocked(op byte, payload []byte) error {
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(c.next64()))
	c.wbuf = appendClientFrame(c.wbuf[:0], op, mask, payload)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.w.cfg.InitTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 4096 {
		c.wbuf = nil
	}
	return err
}

func (c *conn) writeText(build func([]byte) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc == nil {
		return net.ErrClosed
	}
	c.pbuf = build(c.pbuf[:0])
	err := c.writeLocked(opText, c.pbuf)
	if cap(c.pbuf) > 4096 {
		c.pbuf = nil
	}
	return err
}

func (c *conn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc == nil {
		return net.ErrClosed
	}
	return c.writeLocked(op, payload)
}

// dial opens the WebSocket: asks the dispatcher when configured, binds the source address.
func (c *conn) dial(ctx context.Context) error {
	w := c.w
	picked := time.Now()
	target, err := w.target(ctx, c)
	if w.usesDispatcher(c) && err == nil {
		w.pickHist(c).Record(time.Since(picked))
	}
	if err != nil {
		c.lastErr = err
		w.errorKind(dispatchErrKind(err))
		return err
	}
	start := time.Now()
	d := ws.Dialer{
		Timeout:         w.cfg.InitTimeout,
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: bindNoPort}
			if len(w.srcAddrs) > 0 {
				nd.LocalAddr = w.srcAddrs[w.srcNext.Add(1)%uint64(len(w.srcAddrs))]
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, _, err := d.Dial(ctx, target)
	if err != nil {
		w.errorKind(dialErrKind(err))
		return err
	}
	w.connectHist(c).Record(time.Since(start))
	var src io.Reader = nc
	if br != nil {
		if n := br.Buffered(); n > 0 {
			pre, _ := br.Peek(n)
			src = io.MultiReader(bytes.NewReader(bytes.Clone(pre)), nc)
		}
		ws.PutReader(br)
	}
	c.fr.br = bufio.NewReaderSize(src, w.cfg.ReadBuffer)
	c.wmu.Lock()
	c.nc = nc
	c.wmu.Unlock()
	return nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so that binding a source address does not reserve an
// ephemeral port per address: ports are then chosen per (source, destination) pair.
func bindNoPort(network, address string, rc syscall.RawConn) error {
	const ipBindAddressNoPort = 24 // linux/in.h
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	}); err != nil {
		return err
	}
	_ = serr // best effort: older kernels and IPv6 sockets may refuse
	return nil
}

func dialErrKind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "dial: refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "dial: no source port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "dial: too many open files"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "dial: timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "dial: reset"
	case errors.Is(err, syscall.EPIPE):
		return "dial: broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "dial: closed by the server"
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return "dial: http " + strconv.Itoa(int(se))
	}
	return "dial: other"
}

// dispatchErrKind names why asking the dispatcher failed: "dispatch: " and the dial
// error's kind, or "dispatch: http NNN" for an answer other than 200.
func dispatchErrKind(err error) string {
	var he *client.HTTPError
	if errors.As(err, &he) {
		return "dispatch: http " + strconv.Itoa(he.Status)
	}
	return "dispatch: " + strings.TrimPrefix(dialErrKind(err), "dial: ")
}

func readErrKind(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "read: eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "read: reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "read: timeout"
	case errors.Is(err, errProtocol):
		return "read: protocol"
	case errors.Is(err, net.ErrClosed):
		return "read: closed"
	}
	return "read: other"
}

// run dials, sends CONNECT_INIT and reads until the connection ends. For churn it closes the
// connection as soon as CONNECT_INIT is acknowledged. done is called once the connection is
// bound or has failed to bind.
func (c *conn) run(ctx context.Context, churn bool, done func(ok bool)) {
	w := c.w
	w.attempted.Add(1)
	signalled := false
	signal := func(ok bool) {
		if !signalled {
			signalled = true
			if done != nil {
				done(ok)
			}
		}
	}
	defer signal(false)
	if err := c.dial(ctx); err != nil {
		w.dialFailed.Add(1)
		return
	}
	defer c.closeSocket()
	c.initSent = time.Now()
	_ = c.nc.SetReadDeadline(c.initSent.Add(w.cfg.InitTimeout))
	if err := c.writeText(func(b []byte) []byte {
		if w.cfg.Protocol == ProtocolCentrifugo {
			return appendCentConnect(b, centToken(w.cfg.CentSecret, c.userID()))
		}
		cursor := int64(-1)
		if w.cfg.Scenario == ScenarioStorm {
			cursor = c.cursor
		}
		return appendInit(b, c.userID(), w.cfg.Token, cursor)
	}); err != nil {
		w.errorKind("write: init")
		w.initFailed.Add(1)
		return
	}
	for {
		f, err := c.fr.next()
		if err != nil {
			switch c.state.Load() {
			case stNew:
				w.initFailed.Add(1)
				w.errorKind("init: " + readErrKind(err))
			case stBound:
				c.drop()
				w.errorKind(readErrKind(err))
			}
			return
		}
		switch f.op {
		case opText:
			if !c.handleText(f.payload) {
				return
			}
			if c.state.Load() == stBound && !signalled {
				signal(true)
				if churn {
					c.startClose(ws.StatusNormalClosure)
				}
			}
		case opBinary:
			w.errorKind("binary message")
		case opPing:
			_ = c.writeControl(opPong, f.payload)
		case opPong:
		case opClose:
			code := 1005
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
			}
			st := c.state.Load()
			if st == stClosing {
				w.closedClean.Add(1)
				return
			}
			w.closeCode(code)
			if st == stNew {
				w.initFailed.Add(1)
			} else {
				c.drop()
			}
			_ = c.writeControl(opClose, f.payload[:min(2, len(f.payload))])
			return
		}
	}
}

// drop marks a bound connection as dropped by the server or the network.
func (c *conn) drop() {
	if c.state.CompareAndSwap(stBound, stDropped) {
		c.w.droppedN.Add(1)
		if c.w.storm != nil {
			c.w.storm.dropped(c)
		}
	}
}

// startClose sends a close frame; the reader returns when the server answers.
func (c *conn) startClose(code ws.StatusCode) {
	prev := c.state.Swap(stClosing)
	if prev == stDropped {
		c.state.Store(stDropped)
		return
	}
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	if c.writeControl(opClose, p[:]) == nil {
		c.wmu.Lock()
		if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		}
		c.wmu.Unlock()
	}
}

func (c *conn) closeSocket() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
}

// handleText handles one envelope; false ends the connection.
func (c *conn) handleText(p []byte) bool {
	w := c.w
	if w.cfg.Protocol == ProtocolCentrifugo {
		return c.handleCent(p)
	}
	now := time.Now()
	m := &c.in
	if !parseEnvelope(p, m) || !m.hasType {
		w.errorKind("bad json from server")
		return true
	}
	switch m.msgType {
	case typeAck:
		if len(m.clientMsgID) == 0 {
			c.cursor = max(c.cursor, m.seq)
			c.onBound(now, string(m.extend))
			return true
		}
		r := w.lookup(m.clientMsgID)
		if r == nil {
			w.foreign.Add(1)
			return true
		}
		c.onAck(r, m.msgID, now)
	case typeError:
		code := string(m.errCode)
		if code == "" {
			code = "unknown"
		}
		w.errorKind("server error: " + code)
		if c.state.Load() == stNew {
			w.initFailed.Add(1)
			return false
		}
		if r := w.lookup(m.clientMsgID); r != nil {
			c.onRefused(r)
		}
	case typeKeepalive:
		w.keepalives.Add(1)
	case typeSigned, typeConnectInit:
	default:
		if m.msgType < 1 || m.msgType > 4 {
			w.errorKind("unknown msgType")
			return true
		}
		c.cursor = max(c.cursor, m.seq)
		if c.rebinding && w.storm != nil && c.state.Load() == stNew {
			w.storm.replayed.Add(1)
		}
		c.onDelivery(w.lookup(m.clientMsgID), m.t, now)
	}
	return true
}

// onBound marks c bound (the ACK of CONNECT_INIT, or Centrifugo's subscribe reply).
func (c *conn) onBound(now time.Time, extend string) {
	w := c.w
	if !c.state.CompareAndSwap(stNew, stBound) {
		return
	}
	w.initHist(c).Record(now.Sub(c.initSent))
	c.extend = extend
	w.bound.Add(1)
	if c.rebinding && w.storm != nil {
		w.storm.rebound(c, now)
	}
	c.wmu.Lock()
	if c.nc != nil {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.wmu.Unlock()
}

// onAck records the ACK of r (msgID may be nil) and keeps the window full.
func (c *conn) onAck(r *msgRec, msgID []byte, now time.Time) {
	w := c.w
	if r.state.CompareAndSwap(msgSent, msgAcked) {
		w.acked.Add(1)
		w.ackH.Record(time.Duration(now.UnixNano() - r.sendNanos))
		if id, ok := atoi(msgID); ok {
			r.msgID.Store(id)
		}
	} else {
		w.dupAcks.Add(1)
	}
	w.windowNext(c)
}

// onRefused records that the server refused r.
func (c *conn) onRefused(r *msgRec) {
	w := c.w
	if r.state.CompareAndSwap(msgSent, msgRefused) {
		w.refused.Add(1)
		w.unexpect(r)
		w.windowNext(c)
	}
}

// onDelivery records a content message received by c: r is its record (nil when it is not
// one of this run's), t the sender's timestamp (0 when absent).
func (c *conn) onDelivery(r *msgRec, t int64, now time.Time) {
	w := c.w
	c.delivered.Add(1)
	w.delivered.Add(1)
	if t > 0 {
		w.dlvH.Record(time.Duration(now.UnixNano() - t))
	}
	if r == nil {
		w.foreign.Add(1)
		return
	}
	if r.grp != nil {
		w.onGroupDelivery(c, r)
		return
	}
	var bit uint64
	switch {
	case r.receiver == c.user:
		bit = 1 << uint(c.dev)
	case w.conns[r.sender].user == c.user:
		bit = 1 << uint(32+c.dev)
	default:
		w.misrouted.Add(1)
		return
	}
	if r.deliver(bit) {
		w.dupDeliveries.Add(1)
	} else if r.expected&bit != 0 {
		w.dlvPairs.Add(1)
	}
}
