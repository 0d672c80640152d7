package codec

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// DefaultMaxMessage is the message size limit used when Parser.MaxMessage is
// zero or negative: 64 KiB (PROTOCOL §2).
const DefaultMaxMessage = 64 << 10

// Kind tells what Parser.Next found.
type Kind uint8

// Frame kinds reported by Parser.Next.
const (
	// KindNone: nothing to act on. With n > 0 a fragment of a text message
	// was consumed and the message is not complete yet; with n == 0 more
	// bytes are needed.
	KindNone Kind = iota
	// KindText: a complete text message, valid UTF-8, in Payload.
	KindText
	// KindBinary: the client started a binary message. It is reported as
	// soon as the header of its first frame is complete (n covers that header
	// only, Payload is nil); the parser is then finished and every further
	// call returns *CloseError 1003. The server closes with 1003.
	KindBinary
	// KindPing: a ping; answer with a pong carrying Payload.
	KindPing
	// KindPong: a pong; ignore it (it still counts as client activity).
	KindPong
	// KindClose: a close frame. Code is the received status code, or 1005
	// (ws.StatusNoStatusRcvd) when the frame had no payload. Echo Code and
	// close the connection: AppendClose(dst, f.Code, "") writes an empty
	// close body for 1005, as RFC 6455 §5.5.1 asks.
	KindClose
)

// String returns the kind's name, for logs and tests.
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindText:
		return "text"
	case KindBinary:
		return "binary"
	case KindPing:
		return "ping"
	case KindPong:
		return "pong"
	case KindClose:
		return "close"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Frame is what Parser.Next found in the buffered bytes.
//
// Payload is borrowed. For a message that came in one frame (and for control
// frames) it is the unmasked payload inside the caller's buffer, valid until
// the caller discards those bytes. For a fragmented message it is the parser's
// own buffer, valid until the next call to Next.
type Frame struct {
	Kind    Kind
	Payload []byte        // text message, ping/pong payload, raw close payload
	Code    ws.StatusCode // KindClose only: status code, 1005 when none was sent
	Reason  string        // KindClose only: close reason (valid UTF-8)
}

// Parser is a resumable push parser for client-to-server WebSocket frames
// (RFC 6455, server side, no extensions). The zero value is ready to use with
// the default limit. A Parser is a few words when no fragmented message is in
// progress: it holds no buffer between messages.
//
// A Parser is not safe for concurrent use; one belongs to one connection.
type Parser struct {
	// MaxMessage bounds a message's payload (one frame, or all fragments of a
	// fragmented message) in bytes; zero or negative means DefaultMaxMessage.
	// Exceeding it is detected from frame headers, before the payload is
	// buffered, and reported as *CloseError 1009.
	MaxMessage int

	frag    []byte      // payload of the fragmented text message so far
	err     *CloseError // sticky failure: every call after an error returns it
	checked int         // payload bytes of the head frame already validated while incomplete
	utf     utf8State   // UTF-8 state of the text message in progress
	inMsg   bool        // a fragmented text message is in progress (ws.StateFragmented)
	release bool        // frag was handed out as Payload: drop it on the next call
}

// Next parses at most one frame from the start of b, the bytes received and
// not yet consumed.
//
// It returns n == 0 and a nil error when b does not hold a whole frame yet:
// call again with the same bytes plus whatever arrives next. Otherwise n is
// the number of bytes consumed from b; discard them before the next call.
// Next unmasks payloads in place in b.
//
// Errors are *CloseError (1002 protocol violation, 1007 invalid UTF-8, 1009
// message too big, 1003 after KindBinary): answer with a close frame carrying
// that code and close. An error is final: every later call returns it again.
//
// Text is validated as it arrives: a fragment, or even the received prefix of
// an incomplete frame, that contains bytes which can never become valid UTF-8
// fails at once with 1007.
func (p *Parser) Next(b []byte) (f Frame, n int, err error) {
	if p.err != nil {
		return f, 0, p.err
	}
	if p.release {
		p.frag = nil
		p.release = false
	}

	h, hn, herr := decodeHeader(b)
	if herr != "" {
		return f, 0, p.fail(ws.StatusProtocolError, herr)
	}
	if hn == 0 {
		return f, 0, nil
	}
	state := ws.StateServerSide
	if p.inMsg {
		state |= ws.StateFragmented
	}
	if cerr := ws.CheckHeader(h, state); cerr != nil {
		return f, 0, p.fail(ws.StatusProtocolError, cerr.Error())
	}
	if h.OpCode.IsData() {
		total := h.Length
		if h.OpCode == ws.OpContinuation {
			total += int64(len(p.frag))
		}
		if total > int64(p.limit()) {
			return f, 0, p.fail(ws.StatusMessageTooBig, "message too big")
		}
		if h.OpCode == ws.OpBinary {
			p.err = &CloseError{Code: ws.StatusUnsupportedData, Reason: "binary messages are not supported"}
			p.frag = nil
			return Frame{Kind: KindBinary}, hn, nil
		}
	}

	if h.Length > int64(len(b)-hn) {
		// Incomplete payload. Validate the text received so far, once per byte.
		if h.OpCode.IsData() {
			avail := b[hn:]
			if p.checked < len(avail) {
				if !p.utf.feedMasked(avail[p.checked:], h.Mask, p.checked) {
					return f, 0, p.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
				}
				p.checked = len(avail)
			}
		}
		return f, 0, nil
	}

	n = hn + int(h.Length)
	payload := b[hn:n]
	ws.Cipher(payload, h.Mask, 0)

	switch h.OpCode {
	case ws.OpText, ws.OpContinuation:
		checked := p.checked
		p.checked = 0
		if !p.utf.feed(payload[checked:]) {
			return f, 0, p.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
		}
		if !h.Fin {
			p.frag = append(p.frag, payload...)
			p.inMsg = true
			return Frame{Kind: KindNone}, n, nil
		}
		if !p.utf.complete() {
			return f, 0, p.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
		}
		p.utf = utf8State{}
		if p.inMsg {
			p.frag = append(p.frag, payload...)
			payload = p.frag
			p.inMsg = false
			p.release = true
		}
		return Frame{Kind: KindText, Payload: payload}, n, nil
	case ws.OpPing:
		return Frame{Kind: KindPing, Payload: payload}, n, nil
	case ws.OpPong:
		return Frame{Kind: KindPong, Payload: payload}, n, nil
	default: // ws.OpClose: CheckHeader refused every other opcode.
		f = Frame{Kind: KindClose, Payload: payload, Code: ws.StatusNoStatusRcvd}
		switch len(payload) {
		case 0:
		case 1:
			return Frame{}, 0, p.fail(ws.StatusProtocolError, "1-byte close payload")
		default:
			code := ws.StatusCode(binary.BigEndian.Uint16(payload))
			reason := payload[2:]
			if !validCloseCode(code) {
				return Frame{}, 0, p.fail(ws.StatusProtocolError, "invalid close code")
			}
			if !utf8.Valid(reason) {
				return Frame{}, 0, p.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in close reason")
			}
			f.Code = code
			f.Reason = string(reason)
		}
		return f, n, nil
	}
}

// validCloseCode reports whether a client may send code: ws.CheckCloseFrameData's rules
// (no 1004-1006, 1015, unassigned 1xxx or 2xxx), plus the IANA-registered 1012-1014 that
// it refuses (imgate itself sends 1013), and nothing above 4999.
func validCloseCode(code ws.StatusCode) bool {
	if code >= 1012 && code <= 1014 {
		return true
	}
	return code <= 4999 && ws.CheckCloseFrameData(code, "") == nil
}

func (p *Parser) limit() int {
	if p.MaxMessage <= 0 {
		return DefaultMaxMessage
	}
	return p.MaxMessage
}

// fail records the sticky error and drops the fragment buffer.
func (p *Parser) fail(code ws.StatusCode, reason string) error {
	p.err = &CloseError{Code: code, Reason: reason}
	p.frag = nil
	p.release = false
	return p.err
}

// decodeHeader decodes a frame header from the start of b without allocating.
// It returns n == 0 when b does not hold the whole header yet, and a non-empty
// problem for a malformed header (64-bit length with the top bit set).
func decodeHeader(b []byte) (h ws.Header, n int, problem string) {
	if len(b) < 2 {
		return h, 0, ""
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, ""
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, ""
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			return h, 0, ws.ErrHeaderLengthMSB.Error()
		}
		h.Length = int64(v)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, ""
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, ""
}
