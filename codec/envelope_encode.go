package codec

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// chatTimeLayout is RFC 3339 in UTC with exactly three fractional digits.
const chatTimeLayout = "2006-01-02T15:04:05.000Z"

// AppendEnvelope appends e as compact JSON with the member names of PROTOCOL §3.
//
// Empty strings, zero numbers, a zero ChatTime and nil objects are omitted,
// except chatMsg.msgType, which is always written. msgId is written as a
// decimal string, chatTime in UTC with milliseconds
// (2026-11-27T10:00:00.123Z), then ChatMsg.Extra verbatim (it must hold JSON
// members, as DecodeEnvelope produces). Token is never written. Strings are
// escaped as JSON requires; invalid UTF-8 becomes \ufffd.
func AppendEnvelope(dst []byte, e *Envelope) []byte {
	dst = append(dst, '{')
	open := len(dst) // a member before this one needs a comma
	sep := func(dst []byte) []byte {
		if len(dst) > open {
			return append(dst, ',')
		}
		return dst
	}
	if m := e.ChatMsg; m != nil {
		dst = sep(dst)
		dst = AppendChatMsg(append(dst, `"chatMsg":`...), m)
	}
	if n := e.ServerNode; n != nil {
		dst = sep(dst)
		dst = append(dst, `"serverNode":{`...)
		f := true
		if n.IP != "" {
			dst = AppendString(append(dst, `"ip":`...), n.IP)
			f = false
		}
		if n.Port != 0 {
			if !f {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(append(dst, `"port":`...), int64(n.Port), 10)
			f = false
		}
		if n.OnlineCounts != 0 {
			if !f {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(append(dst, `"onlineCounts":`...), n.OnlineCounts, 10)
		}
		dst = append(dst, '}')
	}
	if e.Extend != "" {
		dst = sep(dst)
		dst = AppendString(append(dst, `"extend":`...), e.Extend)
	}
	if e.Cursor != nil {
		dst = sep(dst)
		dst = strconv.AppendInt(append(dst, `"cursor":`...), *e.Cursor, 10)
	}
	if e.CursorAhead {
		dst = sep(dst)
		dst = append(dst, `"cursorAhead":true`...)
	}
	if eb := e.Error; eb != nil {
		dst = sep(dst)
		dst = append(dst, `"error":{`...)
		if eb.Code != "" {
			dst = AppendString(append(dst, `"code":`...), eb.Code)
		}
		if eb.Message != "" {
			if eb.Code != "" {
				dst = append(dst, ',')
			}
			dst = AppendString(append(dst, `"message":`...), eb.Message)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// AppendChatMsg appends m as the chatMsg object of PROTOCOL §3, by the rules of
// AppendEnvelope: empty strings, a zero msgId, a zero ChatTime and a zero Seq are
// omitted, msgType is always written, Extra follows verbatim. The one exception is the
// ACK of CONNECT_INIT (an ACK without msgId): PROTOCOL §5 gives it the newest seq always,
// so it writes "seq":0 for an empty inbox. It is the one chatMsg
// encoder: live delivery and the dispatcher's history API both use it.
func AppendChatMsg(dst []byte, m *ChatMsg) []byte {
	dst = append(dst, '{')
	if m.SenderID != "" {
		dst = AppendString(append(dst, `"senderId":`...), m.SenderID)
		dst = append(dst, ',')
	}
	if m.ReceiverID != "" {
		dst = AppendString(append(dst, `"receiverId":`...), m.ReceiverID)
		dst = append(dst, ',')
	}
	if m.GroupID != "" {
		dst = AppendString(append(dst, `"groupId":`...), m.GroupID)
		dst = append(dst, ',')
	}
	if m.Msg != "" {
		dst = AppendString(append(dst, `"msg":`...), m.Msg)
		dst = append(dst, ',')
	}
	dst = strconv.AppendInt(append(dst, `"msgType":`...), int64(m.MsgType), 10)
	if m.MsgID != 0 {
		dst = strconv.AppendInt(append(dst, `,"msgId":"`...), m.MsgID, 10)
		dst = append(dst, '"')
	}
	if m.ClientMsgID != "" {
		dst = AppendString(append(dst, `,"clientMsgId":`...), m.ClientMsgID)
	}
	if !m.ChatTime.IsZero() {
		dst = append(dst, `,"chatTime":"`...)
		dst = appendChatTime(dst, m.ChatTime)
		dst = append(dst, '"')
	}
	if m.Seq != 0 || (m.MsgType == Ack && m.MsgID == 0) {
		dst = strconv.AppendInt(append(dst, `,"seq":`...), m.Seq, 10)
	}
	if len(m.Extra) > 0 {
		dst = append(dst, ',')
		dst = append(dst, m.Extra...)
	}
	return append(dst, '}')
}

// appendChatTime appends t in UTC with millisecond precision (truncated),
// by hand: time.AppendFormat is several times slower on this hot path.
func appendChatTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, chatTimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	dst = append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return dst
}

// safeASCII marks the ASCII bytes that need no escaping inside a JSON string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string: the one string escaper of the JSON
// imgate writes by hand (envelopes, the dispatcher's answers, /healthz). Control characters, quote and backslash are escaped; HTML
// characters (<, >, &) and U+2028/U+2029 are left as they are (the output is
// JSON, not HTML or JavaScript source); invalid UTF-8 becomes \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
