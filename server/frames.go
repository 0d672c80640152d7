package server

import (
	"encoding/binary"

	"github.com/gobwas/ws"

	"imgate/codec"
)

// appendEnvelopeFrame appends e as one unmasked text frame. The JSON is encoded once,
// straight into dst after room for the longest header, then moved up against the header.
func appendEnvelopeFrame(dst []byte, e *codec.Envelope) []byte {
	const room = 10
	start := len(dst)
	dst = append(dst, make([]byte, room)...)
	dst = codec.AppendEnvelope(dst, e)
	n := len(dst) - start - room
	var hdr [room]byte
	hdr[0] = 0x80 | byte(ws.OpText)
	h := 2
	switch {
	case n <= 125:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	copy(dst[start:], hdr[:h])
	copy(dst[start+h:], dst[start+room:])
	return dst[:start+h+n]
}

// appendCloseFrame appends the close frame of reason r.
func appendCloseFrame(dst []byte, r closeReason) []byte {
	return codec.AppendClose(dst, r.Code(), r.String())
}

// appendHTTPError appends an HTTP error response (before the upgrade).
func appendHTTPError(dst []byte, status int, reason string) []byte {
	return codec.AppendHTTPError(dst, status, reason)
}

// appendInitAck appends the ACK of CONNECT_INIT: the user, the newest inbox seq (0 too),
// this node, and the connection id in extend.
func (s *Server) appendInitAck(dst []byte, c *conn, seq int64, cursorAhead bool) []byte {
	m := &codec.ChatMsg{SenderID: c.user, MsgType: codec.Ack, Seq: seq} // "seq":0 too (the encoder's rule)
	return appendEnvelopeFrame(dst, &codec.Envelope{
		ChatMsg:     m,
		ServerNode:  s.nodeInfo(),
		Extend:      c.idString(),
		CursorAhead: cursorAhead,
	})
}
