package codec

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxClientMsgIDBytes bounds chatMsg.clientMsgId (PROTOCOL §3).
const MaxClientMsgIDBytes = 64

// Bounds of the unknown chatMsg members kept in ChatMsg.Extra (docs/protocol.md §3). They
// are stored and replayed to every kind of client: each must be able to decode them, Go's
// encoding/json included (it fails on a number out of float64's range), and every store
// must hold them (PostgreSQL cannot hold NUL).
const (
	MaxExtraBytes  = 4096 // all unknown members together, compacted, with their keys
	MaxExtraDepth  = 16   // arrays and objects nested in one member's value
	MaxExtraNumber = 32   // bytes of one number literal; it must also be a finite float64
)

// DecodeEnvelope decodes one envelope (PROTOCOL §3) from the payload of a
// text message. b is borrowed: nothing in the result refers to it.
//
// Errors are *DecodeError, by precedence:
//   - "bad_json": b is not one JSON object (syntax error, invalid UTF-8,
//     nesting deeper than 1000) or chatMsg is present but not an object;
//   - "bad_type": chatMsg.msgType is missing or not an integer;
//   - "bad_request": a known member has the wrong JSON type (senderId a
//     number, say), msgId or cursor is not an int64, clientMsgId is over 64
//     bytes, the unknown chatMsg members pass a bound (MaxExtraBytes,
//     MaxExtraDepth, MaxExtraNumber) or hold a \u0000 escape.
//
// Leniency: null counts as absent; msgId and cursor may be a JSON integer or
// a string of decimal digits; chatTime (an RFC 3339 string) and seq are read
// when well-formed and otherwise ignored (the server assigns them). Unknown
// chatMsg members are kept in ChatMsg.Extra, compacted; unknown top-level
// members are ignored. When a member is repeated, the last one wins. A
// "token" member inside chatMsg (in any letter case) is dropped: a credential
// is never stored or forwarded (PROTOCOL §7); the token goes top-level.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if !utf8.Valid(b) {
		return nil, &DecodeError{Code: CodeBadJSON, Message: "invalid UTF-8"}
	}
	d := envDecoder{s: scanner{b: b}}
	e := d.envelope()
	if d.s.bad {
		return nil, &DecodeError{Code: CodeBadJSON, Message: "malformed JSON"}
	}
	if d.err != nil {
		return nil, d.err
	}
	if e.ChatMsg == nil || !d.hasType {
		return nil, &DecodeError{Code: CodeBadType, Message: "msgType is missing"}
	}
	d.fill(e)
	if len(e.ChatMsg.ClientMsgID) > MaxClientMsgIDBytes {
		return nil, &DecodeError{Code: CodeBadRequest, Message: "clientMsgId is longer than 64 bytes"}
	}
	return e, nil
}

// Indexes of the string members in envDecoder.spans.
const (
	fSenderID = iota
	fReceiverID
	fGroupID
	fMsg
	fClientMsgID
	fExtend
	fToken
	fIP
	fErrCode
	fErrMessage
	nStringFields
)

// strSpan is a JSON string's raw content in the input.
type strSpan struct {
	start, end int32
	escaped    bool
	set        bool
}

// envDecoder decodes an envelope in one pass over the input. Strings are
// recorded as spans and materialized by fill in a single allocation.
type envDecoder struct {
	s       scanner
	err     *DecodeError // first semantic error, by precedence
	rank    int          // precedence of err: 3 bad_json, 2 bad_type, 1 bad_request
	hasType bool
	spans   [nStringFields]strSpan
	// Unknown chatMsg members: the first ones as spans, copied out by fill
	// in one allocation; past len(extraSpans), appended to extra directly.
	extraSpans [8]extraSpan
	nExtra     int
	extra      []byte
	extraBytes int // compacted size of the unknown members so far, commas included
}

// extraSpan locates one unknown member: its raw key and its value.
type extraSpan struct {
	key, val [2]int32
}

// appendExtra appends one unknown member to dst: raw key, colon, compact value.
func (d *envDecoder) appendExtra(dst []byte, sp extraSpan) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, d.s.b[sp.key[0]:sp.key[1]]...)
	dst = append(dst, ':')
	return appendCompact(dst, d.s.b[sp.val[0]:sp.val[1]])
}

func (d *envDecoder) fail(code, msg string) {
	r := 1
	switch code {
	case CodeBadJSON:
		r = 3
	case CodeBadType:
		r = 2
	}
	if r > d.rank {
		d.rank = r
		d.err = &DecodeError{Code: code, Message: msg}
	}
}

// members walks the object at the current position, calling member for each
// key with the scanner positioned before the value. member must consume the
// value.
func (d *envDecoder) members(member func(key []byte, keyStart int)) {
	s := &d.s
	if !s.consume('{') {
		return
	}
	if s.peek() == '}' {
		s.i++
		return
	}
	for !s.bad {
		if s.peek() != '"' {
			s.bad = true
			return
		}
		keyStart := s.i
		raw, esc := s.str()
		if s.bad || !s.consume(':') {
			return
		}
		key := raw
		if esc {
			key = appendUnquoted(nil, raw) // rare: escapes in a member name
		}
		member(key, keyStart)
		if s.bad {
			return
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.consume('}')
		return
	}
}

// envelopeAlloc puts an envelope and its chatMsg in one allocation.
type envelopeAlloc struct {
	e Envelope
	m ChatMsg
}

func (d *envDecoder) envelope() *Envelope {
	block := &envelopeAlloc{}
	e := &block.e
	if d.s.peek() != '{' {
		d.s.bad = true
		return e
	}
	d.members(func(key []byte, _ int) {
		switch string(key) {
		case "chatMsg":
			switch d.s.peek() {
			case '{':
				block.m = ChatMsg{}
				e.ChatMsg = &block.m
				d.hasType = false
				d.nExtra, d.extra, d.extraBytes = 0, nil, 0
				for f := fSenderID; f <= fClientMsgID; f++ {
					d.spans[f] = strSpan{}
				}
				d.chatMsg(e.ChatMsg)
			default:
				d.s.skip(1)
				d.fail(CodeBadJSON, "chatMsg is not an object")
			}
		case "serverNode":
			switch d.s.peek() {
			case '{':
				e.ServerNode = &NodeInfo{}
				d.spans[fIP] = strSpan{}
				d.serverNode(e.ServerNode)
			case 'n':
				d.s.skip(1)
				e.ServerNode = nil
			default:
				d.s.skip(1)
				d.fail(CodeBadRequest, "serverNode is not an object")
			}
		case "extend":
			d.str(fExtend, "extend")
		case "token":
			d.str(fToken, "token")
		case "cursor":
			v, ok, null := d.int(true)
			switch {
			case null:
				e.Cursor = nil
			case ok:
				e.Cursor = &v
			default:
				d.fail(CodeBadRequest, "cursor is not an integer")
			}
		case "cursorAhead":
			// Written by the server on the ACK of CONNECT_INIT (PROTOCOL §5); read for
			// clients (imgate/client). Only the literal true sets it; anything else is ignored.
			e.CursorAhead = d.s.peek() == 't'
			d.s.skip(1)
			if d.s.bad {
				e.CursorAhead = false
			}
		case "error":
			switch d.s.peek() {
			case '{':
				e.Error = &ErrorBody{}
				d.spans[fErrCode], d.spans[fErrMessage] = strSpan{}, strSpan{}
				d.members(func(key []byte, _ int) {
					switch string(key) {
					case "code":
						d.str(fErrCode, "error.code")
					case "message":
						d.str(fErrMessage, "error.message")
					default:
						d.s.skip(1)
					}
				})
			case 'n':
				d.s.skip(1)
				e.Error = nil
			default:
				d.s.skip(1)
				d.fail(CodeBadRequest, "error is not an object")
			}
		default:
			d.s.skip(1)
		}
	})
	if d.s.peek() != 0 || d.s.i != len(d.s.b) {
		d.s.bad = true // trailing bytes after the object
	}
	return e
}

func (d *envDecoder) chatMsg(m *ChatMsg) {
	d.members(func(key []byte, keyStart int) {
		switch string(key) {
		case "senderId":
			d.str(fSenderID, "senderId")
		case "receiverId":
			d.str(fReceiverID, "receiverId")
		case "groupId":
			d.str(fGroupID, "groupId")
		case "msg":
			d.str(fMsg, "msg")
		case "clientMsgId":
			d.str(fClientMsgID, "clientMsgId")
		case "msgType":
			raw, integer, start := d.num()
			v, ok := parseInt(raw)
			if raw == nil || !integer || !ok || v != int64(int(v)) {
				if d.s.b[start] == 'n' && !d.s.bad { // null: absent
					d.hasType = false
					return
				}
				d.fail(CodeBadType, "msgType is not an integer")
				return
			}
			m.MsgType = MsgType(v)
			d.hasType = true
		case "msgId":
			v, ok, null := d.int(true)
			switch {
			case null:
				m.MsgID = 0
			case ok && v >= 0:
				m.MsgID = v
			default:
				d.fail(CodeBadRequest, "msgId is not a non-negative int64")
			}
		case "chatTime":
			m.ChatTime = time.Time{}
			if d.s.peek() == '"' {
				raw, esc := d.s.str()
				if !esc {
					// Only times whose UTC year RFC 3339 can write back (0000–9999):
					// "0000-01-01T00:00:00+01:00" is year -1 in UTC, which the encoder
					// would write as a chatTime no decoder reads (found by the fuzzer).
					if t, err := time.Parse(time.RFC3339Nano, string(raw)); err == nil {
						if y := t.UTC().Year(); y >= 0 && y <= 9999 {
							m.ChatTime = t
						}
					}
				}
				return
			}
			d.s.skip(1)
		case "seq":
			m.Seq = 0
			raw, integer, _ := d.num()
			if v, ok := parseInt(raw); integer && ok {
				m.Seq = v
			}
		default:
			_, end := d.s.skip(1)
			if d.s.bad {
				return
			}
			if isTokenKey(key) {
				return // never stored or forwarded (PROTOCOL §7)
			}
			// The raw key ends at its closing quote; the value follows the colon.
			kEnd := keyStart + 1
			for d.s.b[kEnd] != '"' {
				if d.s.b[kEnd] == '\\' {
					kEnd++
				}
				kEnd++
			}
			vStart := kEnd + 1
			for d.s.b[vStart] != ':' {
				vStart++
			}
			sp := extraSpan{key: [2]int32{int32(keyStart), int32(kEnd + 1)}, val: [2]int32{int32(vStart + 1), int32(end)}}
			if !d.boundExtra(sp) {
				return
			}
			if d.nExtra < len(d.extraSpans) {
				d.extraSpans[d.nExtra] = sp
				d.nExtra++
				return
			}
			d.extra = d.appendExtra(d.extra, sp)
		}
	})
}

// isTokenKey reports whether an unknown chatMsg member is named token, in any letter
// case (encoding/json would match a Token field to any of them).
func isTokenKey(key []byte) bool { return bytes.EqualFold(key, []byte("token")) }

// boundExtra checks one unknown member against the bounds of Extra and counts it; on a
// violation it records a bad_request and reports false.
func (d *envDecoder) boundExtra(sp extraSpan) bool {
	keySize, why := checkExtraValue(d.s.b[sp.key[0]:sp.key[1]])
	valSize, why2 := checkExtraValue(d.s.b[sp.val[0]:sp.val[1]])
	if why == "" {
		why = why2
	}
	if why == "" {
		if d.extraBytes > 0 {
			d.extraBytes++ // the comma
		}
		d.extraBytes += keySize + 1 + valSize
		if d.extraBytes > MaxExtraBytes {
			why = "unknown chatMsg members are over " + strconv.Itoa(MaxExtraBytes) + " bytes"
		}
	}
	if why != "" {
		d.fail(CodeBadRequest, why)
		return false
	}
	return true
}

func (d *envDecoder) serverNode(n *NodeInfo) {
	d.members(func(key []byte, _ int) {
		switch string(key) {
		case "ip":
			d.str(fIP, "serverNode.ip")
		case "port":
			v, ok, null := d.int(false)
			if !null && (!ok || v != int64(int(v))) {
				d.fail(CodeBadRequest, "serverNode.port is not an integer")
				return
			}
			n.Port = int(v)
		case "onlineCounts":
			v, ok, null := d.int(false)
			if !null && !ok {
				d.fail(CodeBadRequest, "serverNode.onlineCounts is not an integer")
				return
			}
			n.OnlineCounts = v
		default:
			d.s.skip(1)
		}
	})
}

// str reads a string member into spans[f]; null clears it; any other type is
// a bad_request.
func (d *envDecoder) str(f int, name string) {
	switch d.s.peek() {
	case '"':
		start := d.s.i + 1
		_, esc := d.s.str()
		d.spans[f] = strSpan{start: int32(start), end: int32(d.s.i - 1), escaped: esc, set: true}
	case 'n':
		d.s.skip(1)
		d.spans[f] = strSpan{}
	default:
		d.s.skip(1)
		d.fail(CodeBadRequest, name+" is not a string")
	}
}

// num skips one value and returns it when it is a number.
func (d *envDecoder) num() (raw []byte, integer bool, start int) {
	c := d.s.peek()
	start = d.s.i
	if c == '-' || (c >= '0' && c <= '9') {
		raw, integer = d.s.number()
		return raw, integer, start
	}
	d.s.skip(1)
	if start >= len(d.s.b) {
		start = len(d.s.b) - 1
	}
	return nil, false, start
}

// int reads an int64 given as a JSON integer or a string of decimal digits.
// An empty string counts as null.
// Strings of digits are accepted only when digits is set (msgId, cursor).
func (d *envDecoder) int(digits bool) (v int64, ok, null bool) {
	switch c := d.s.peek(); {
	case c == 'n':
		d.s.skip(1)
		return 0, false, !d.s.bad
	case c == '"' && digits:
		raw, esc := d.s.str()
		if esc {
			return 0, false, false
		}
		if len(raw) == 0 {
			return 0, false, true // "" counts as absent
		}
		if raw[0] == '-' {
			return 0, false, false
		}
		v, ok = parseInt(raw)
		return v, ok, false
	default:
		raw, integer, _ := d.num()
		if !integer {
			return 0, false, false
		}
		v, ok = parseInt(raw)
		return v, ok, false
	}
}

// fill materializes the recorded strings with one allocation and checks the
// limits that depend on decoded values.
func (d *envDecoder) fill(e *Envelope) {
	total := 0
	for _, sp := range d.spans {
		total += int(sp.end - sp.start)
	}
	var sb strings.Builder
	sb.Grow(total)
	var bounds [nStringFields][2]int
	var tmp []byte
	for f, sp := range d.spans {
		if !sp.set {
			continue
		}
		start := sb.Len()
		raw := d.s.b[sp.start:sp.end]
		if sp.escaped {
			tmp = appendUnquoted(tmp[:0], raw)
			raw = tmp
		}
		sb.Write(raw)
		bounds[f] = [2]int{start, sb.Len()}
	}
	all := sb.String()
	get := func(f int) string { return all[bounds[f][0]:bounds[f][1]] }
	m := e.ChatMsg
	if d.nExtra > 0 {
		size := len(d.extra)
		for _, sp := range d.extraSpans[:d.nExtra] {
			size += int(sp.key[1]-sp.key[0]+sp.val[1]-sp.val[0]) + 2
		}
		extra := make([]byte, 0, size)
		for _, sp := range d.extraSpans[:d.nExtra] {
			extra = d.appendExtra(extra, sp)
		}
		if len(d.extra) > 0 {
			extra = append(append(extra, ','), d.extra...)
		}
		m.Extra = extra
	}
	m.SenderID = get(fSenderID)
	m.ReceiverID = get(fReceiverID)
	m.GroupID = get(fGroupID)
	m.Msg = get(fMsg)
	m.ClientMsgID = get(fClientMsgID)
	e.Extend = get(fExtend)
	e.Token = get(fToken)
	if e.ServerNode != nil {
		e.ServerNode.IP = get(fIP)
	}
	if e.Error != nil {
		e.Error.Code = get(fErrCode)
		e.Error.Message = get(fErrMessage)
	}
}
