package codec

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// AppendFrameHeader appends the header of a final, unmasked server frame with
// opcode op and a payload of length bytes (7-, 16- or 64-bit length as RFC 6455
// §5.2 requires). Use it to write the header and payload separately (writev).
func AppendFrameHeader(dst []byte, op ws.OpCode, length int) []byte {
	b0 := 0x80 | byte(op&0x0f)
	switch {
	case length <= 125:
		return append(dst, b0, byte(length))
	case length <= 0xffff:
		return append(dst, b0, 126, byte(length>>8), byte(length))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(length))
	}
}

// AppendFrame appends a final, unmasked server frame with opcode op carrying
// payload. Control frames (ping, pong, close) must carry at most 125 bytes;
// that is the caller's duty.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = AppendFrameHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// AppendClose appends a close frame. With code 0 or 1005 (no status) the frame
// has no body; otherwise the body is the code and reason, the reason cut to
// 123 bytes at a UTF-8 boundary so the frame stays a valid control frame.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 || code == ws.StatusNoStatusRcvd {
		return append(dst, 0x80|byte(ws.OpClose), 0)
	}
	const maxReason = ws.MaxControlFramePayloadSize - 2
	if len(reason) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = append(dst, 0x80|byte(ws.OpClose), byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}
