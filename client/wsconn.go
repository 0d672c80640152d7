package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsConn is one client-side WebSocket (RFC 6455) connection. The session goroutine is its
// only reader; writes come from any goroutine (Send, keepalive, the reader's pongs) and are
// serialized by wmu.
type wsConn struct {
	nc      net.Conn
	timeout time.Duration // write deadline

	// owned by the reader
	rd *wsutil.Reader

	wmu    sync.Mutex // guards the fields below and every write to nc
	wbuf   bytes.Buffer
	closed bool // a close frame was written or the connection was aborted
}

// dialWS opens the WebSocket at target. An HTTP refusal of the upgrade is an *HTTPError.
func dialWS(ctx context.Context, cfg *Config, target string) (*wsConn, error) {
	d := ws.Dialer{Timeout: cfg.ConnectTimeout, TLSConfig: cfg.TLSConfig}
	nc, br, _, err := d.Dial(ctx, target)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, &HTTPError{URL: target, Status: int(se)}
		}
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	// The dialer's reader may already hold the first frames (PITFALLS: gobwas/ws): read
	// through it when it exists.
	var src io.Reader = br
	if br == nil {
		src = bufio.NewReaderSize(nc, 4096)
	}
	c := &wsConn{nc: nc, timeout: cfg.ConnectTimeout}
	c.rd = &wsutil.Reader{
		Source:         src,
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxMessageSize: int64(cfg.MaxInboundBytes),
		OnIntermediate: c.control,
	}
	return c, nil
}

// next returns the payload of the next text message, answering control frames on the way.
// A close frame from the node is returned as a *CloseError.
func (c *wsConn) next(deadline time.Time) ([]byte, error) {
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		hdr, err := c.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			if err := c.control(hdr, c.rd); err != nil {
				return nil, err
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			_ = c.closeWith(ws.StatusUnsupportedData, "")
			return nil, fmt.Errorf("client: the node sent opcode %v, not a text message", hdr.OpCode)
		}
		return io.ReadAll(c.rd)
	}
}

// control handles one control frame whose payload r holds.
func (c *wsConn) control(h ws.Header, r io.Reader) error {
	var buf [125]byte
	p := buf[:h.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		return c.write(ws.OpPong, p)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		if len(p) == 0 {
			code = ws.StatusNoStatusRcvd
		}
		_ = c.closeWith(code, "")
		return &CloseError{Code: int(code), Reason: reason}
	}
	return nil // pong
}

// write sends one final masked frame.
func (c *wsConn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	return c.writeLocked(op, payload)
}

// writeLocked frames payload into wbuf and writes it; callers hold wmu.
func (c *wsConn) writeLocked(op ws.OpCode, payload []byte) error {
	mask := ws.NewMask()
	c.wbuf.Reset()
	if err := ws.WriteHeader(&c.wbuf, ws.Header{Fin: true, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))}); err != nil {
		return err
	}
	start := c.wbuf.Len()
	c.wbuf.Write(payload)
	ws.Cipher(c.wbuf.Bytes()[start:], mask, 0)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.wbuf.Bytes())
	if c.wbuf.Cap() > 64<<10 {
		c.wbuf = bytes.Buffer{} // do not keep a large message's buffer
	}
	return err
}

// closeWith writes a close frame (once); the reader then waits for the node's answer or
// the end of the connection. 1005 is sent as an empty close frame.
func (c *wsConn) closeWith(code ws.StatusCode, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var p []byte
	if code != ws.StatusNoStatusRcvd {
		p = ws.NewCloseFrameBody(code, reason)
	}
	return c.writeLocked(ws.OpClose, p)
}

// abort ends the connection at once: the reader fails and the session ends.
func (c *wsConn) abort() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	_ = c.nc.Close()
}
