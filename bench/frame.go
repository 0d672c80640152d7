package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxInbound bounds a message from the server (the server's own default limit is 64 KiB).
const maxInbound = 1 << 20

var errProtocol = errors.New("bench: websocket protocol error from server")

// frameReader reads server frames (unmasked) from a bufio.Reader without allocating for
// messages that fit in the reader's buffer.
type frameReader struct {
	br      *bufio.Reader
	scratch []byte // reassembly of fragmented or large messages
}

// frame is one complete message or control frame. payload is borrowed until the next next().
type frame struct {
	op      byte
	payload []byte
}

// next returns the next complete data message or control frame.
func (r *frameReader) next() (frame, error) {
	var msgOp byte
	assembling := false
	r.scratch = r.scratch[:0]
	for {
		hdr, err := r.br.Peek(2)
		if err != nil {
			return frame{}, err
		}
		fin := hdr[0]&0x80 != 0
		op := hdr[0] & 0x0f
		if hdr[0]&0x70 != 0 || hdr[1]&0x80 != 0 {
			return frame{}, errProtocol // RSV bits or a masked server frame
		}
		n := int64(hdr[1] & 0x7f)
		hlen := 2
		switch n {
		case 126:
			h, err := r.br.Peek(4)
			if err != nil {
				return frame{}, err
			}
			n, hlen = int64(binary.BigEndian.Uint16(h[2:])), 4
		case 127:
			h, err := r.br.Peek(10)
			if err != nil {
				return frame{}, err
			}
			n, hlen = int64(binary.BigEndian.Uint64(h[2:])), 10
		}
		if n > maxInbound || n < 0 {
			return frame{}, fmt.Errorf("bench: server frame of %d bytes: %w", n, errProtocol)
		}
		if _, err := r.br.Discard(hlen); err != nil {
			return frame{}, err
		}
		isControl := op&0x8 != 0
		if isControl && (!fin || n > 125) {
			return frame{}, errProtocol
		}
		var p []byte
		if int(n) <= r.br.Size() && !assembling && (fin || isControl) {
			if p, err = r.br.Peek(int(n)); err != nil {
				return frame{}, err
			}
			if _, err := r.br.Discard(int(n)); err != nil {
				return frame{}, err
			}
		} else {
			if isControl {
				// Fits in any reader buffer (≤125 bytes), handled above.
				return frame{}, errProtocol
			}
			start := len(r.scratch)
			if start+int(n) > maxInbound {
				return frame{}, errProtocol
			}
			r.scratch = append(r.scratch, make([]byte, n)...)
			if _, err := io.ReadFull(r.br, r.scratch[start:]); err != nil {
				return frame{}, err
			}
		}
		if isControl {
			return frame{op: op, payload: p}, nil
		}
		switch {
		case op == opCont && !assembling:
			return frame{}, errProtocol
		case op != opCont && assembling:
			return frame{}, errProtocol
		case op != opCont:
			msgOp = op
		}
		if fin {
			if assembling || p == nil {
				return frame{op: msgOp, payload: r.scratch}, nil
			}
			return frame{op: msgOp, payload: p}, nil
		}
		if p != nil { // first fragment read via Peek: move it to scratch
			r.scratch = append(r.scratch, p...)
		}
		assembling = true
	}
}

// appendClientFrame appends one final client frame (masked, as RFC 6455 requires) with payload.
func appendClientFrame(dst []byte, op byte, mask [4]byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}
