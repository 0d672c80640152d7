package bench

import (
	"strconv"
)

// Message types of PROTOCOL §4 used by the generator.
const (
	typeConnectInit = 0
	typeWords       = 1
	typeSigned      = 8
	typeKeepalive   = 9
	typeAck         = 11
	typeError       = 12
)

// appendInit appends a CONNECT_INIT envelope for user.
func appendInit(dst []byte, user, token string, cursor int64) []byte {
	dst = append(dst, `{"chatMsg":{"senderId":"`...)
	dst = append(dst, user...)
	dst = append(dst, `","msgType":0}`...)
	if cursor >= 0 {
		dst = append(dst, `,"cursor":`...)
		dst = strconv.AppendInt(dst, cursor, 10)
	}
	if token != "" {
		dst = append(dst, `,"token":`...)
		dst = strconv.AppendQuote(dst, token)
	}
	return append(dst, '}')
}

// appendKeepalive appends a KEEPALIVE envelope for user.
func appendKeepalive(dst []byte, user string) []byte {
	dst = append(dst, `{"chatMsg":{"senderId":"`...)
	dst = append(dst, user...)
	return append(dst, `","msgType":9}}`...)
}

// appendWords appends a WORDS envelope. clientMsgId is tag-idx; the unknown chatMsg field "t" carries
// the client's send time in Unix nanoseconds, which the server must deliver back verbatim.
func appendWords(dst []byte, sender, receiver, tag string, idx uint64, sendNanos int64, body []byte) []byte {
	return appendContent(dst, sender, "receiverId", receiver, tag, idx, sendNanos, body)
}

// appendGroupWords appends a WORDS envelope to a group (PROTOCOL §8: groupId, no receiverId);
// clientMsgId and "t" as in appendWords.
func appendGroupWords(dst []byte, sender, group, tag string, idx uint64, sendNanos int64, body []byte) []byte {
	return appendContent(dst, sender, "groupId", group, tag, idx, sendNanos, body)
}

// appendContent appends a WORDS envelope addressed by field (receiverId or groupId) to to.
func appendContent(dst []byte, sender, field, to, tag string, idx uint64, sendNanos int64, body []byte) []byte {
	dst = append(dst, `{"chatMsg":{"senderId":"`...)
	dst = append(dst, sender...)
	dst = append(dst, `","`...)
	dst = append(dst, field...)
	dst = append(dst, `":"`...)
	dst = append(dst, to...)
	dst = append(dst, `","msg":"`...)
	dst = append(dst, body...)
	dst = append(dst, `","msgType":1,"clientMsgId":"`...)
	dst = append(dst, tag...)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, idx, 10)
	dst = append(dst, `","t":`...)
	dst = strconv.AppendInt(dst, sendNanos, 10)
	return append(dst, `}}`...)
}

// inMsg is what the generator needs from a received envelope. Byte slices alias the frame
// payload and are valid only until the next read.
type inMsg struct {
	msgType     int
	hasType     bool
	msgID       []byte // decimal digits (string or number on the wire)
	clientMsgID []byte
	senderID    []byte
	t           int64 // the "t" field of chatMsg, 0 when absent
	seq         int64 // the "seq" field of chatMsg, 0 when absent
	extend      []byte
	errCode     []byte
}

// parseEnvelope extracts the fields of inMsg from one JSON envelope. It accepts any JSON
// formatting and key order and skips what it does not need; it reports false on malformed input.
// Strings with escapes are returned raw (the generator's own ids never contain any).
func parseEnvelope(b []byte, m *inMsg) bool {
	*m = inMsg{}
	p := jscan{b: b}
	return p.object(func(key []byte) bool {
		switch string(key) {
		case "chatMsg":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "msgType":
					v, ok := p.int()
					m.msgType, m.hasType = int(v), ok
					return ok
				case "msgId":
					m.msgID = p.scalar()
					return m.msgID != nil
				case "clientMsgId":
					m.clientMsgID = p.scalar()
					return m.clientMsgID != nil
				case "senderId":
					m.senderID = p.scalar()
					return m.senderID != nil
				case "t":
					v, ok := p.int()
					m.t = v
					return ok
				case "seq":
					v, ok := p.int()
					m.seq = v
					return ok
				}
				return p.skip()
			})
		case "extend":
			m.extend = p.scalar()
			return m.extend != nil
		case "error":
			if p.peek() == 'n' {
				return p.skip()
			}
			return p.object(func(key []byte) bool {
				if string(key) == "code" {
					m.errCode = p.scalar()
					return m.errCode != nil
				}
				return p.skip()
			})
		}
		return p.skip()
	})
}

// jscan is a minimal JSON scanner over a byte slice.
type jscan struct {
	b []byte
	i int
}

func (p *jscan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jscan) peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// object walks an object, calling member with each key positioned at its value; member must
// consume the value. A null value counts as an empty object.
func (p *jscan) object(member func(key []byte) bool) bool {
	switch p.peek() {
	case 'n':
		return p.skip()
	case '{':
	default:
		return false
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		if p.peek() != '"' {
			return false
		}
		key, ok := p.str()
		if !ok || p.peek() != ':' {
			return false
		}
		p.i++
		if !member(key) {
			return false
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// str reads a string at p.i and returns its raw contents.
func (p *jscan) str() ([]byte, bool) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
		case '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		default:
			p.i++
		}
	}
	return nil, false
}

// scalar reads a string or a number and returns its text; nil for anything else except null,
// which yields an empty non-nil slice.
func (p *jscan) scalar() []byte {
	switch c := p.peek(); {
	case c == '"':
		s, ok := p.str()
		if !ok {
			return nil
		}
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		p.num()
		return p.b[start:p.i]
	case c == 'n':
		if p.skip() {
			return p.b[p.i:p.i]
		}
	}
	return nil
}

func (p *jscan) num() {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			p.i++
		default:
			return
		}
	}
}

// int reads an integer number (or a string holding one).
func (p *jscan) int() (int64, bool) {
	s := p.scalar()
	if s == nil {
		return 0, false
	}
	v, ok := atoi(s)
	return v, ok
}

func atoi(s []byte) (int64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var v int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// skip consumes one value of any kind.
func (p *jscan) skip() bool {
	switch c := p.peek(); {
	case c == '"':
		_, ok := p.str()
		return ok
	case c == '{' || c == '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if _, ok := p.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					return true
				}
			}
			p.i++
		}
		return false
	case c == '-' || (c >= '0' && c <= '9'):
		p.num()
		return true
	case c == 't' || c == 'f' || c == 'n':
		for p.i < len(p.b) && p.b[p.i] >= 'a' && p.b[p.i] <= 'z' {
			p.i++
		}
		return true
	}
	return false
}
