package dispatch

import (
	"net"
	"strconv"
	"unicode/utf8"

	"imgate/message"
)

// The responses are small and fixed in shape, so they are appended by hand: no
// reflection on the pick path, and msgId and chatTime in exactly the envelope's form.

const hexDigits = "0123456789abcdef"

// chatTimeLayout is chatTime on the wire: RFC 3339, UTC, milliseconds (PROTOCOL §3).
const chatTimeLayout = "2006-01-02T15:04:05.000Z"

// appendString appends s as a JSON string, escaped as encoding/json does: control
// characters, '"', '\\', '<', '>', '&', U+2028 and U+2029 escaped; invalid UTF-8
// replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKey appends key as a JSON member name and a colon, with a leading comma
// unless first.
func appendKey(b []byte, key string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendString(b, key)
	return append(b, ':')
}

// appendOKPrefix starts a success answer; the caller appends data and then '}'.
func appendOKPrefix(b []byte) []byte {
	return append(b, `{"status":200,"msg":"OK","success":true,"data":`...)
}

// appendError appends a whole error answer: {"status":N,"msg":M,"success":false,"data":null}.
func appendError(b []byte, status int, msg string) []byte {
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	return append(b, `,"success":false,"data":null}`...)
}

// wsURL is n.WSURL, or the default URL of n when the view left it empty.
func wsURL(n *Node) string {
	if n.WSURL != "" {
		return n.WSURL
	}
	return "ws://" + net.JoinHostPort(n.IP, strconv.Itoa(n.Port)) + "/ws"
}

// appendPicked appends the data object of a pick answer (PROTOCOL §1).
func appendPicked(b []byte, n *Node) []byte {
	b = append(b, `{"ip":`...)
	b = appendString(b, n.IP)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(n.Port), 10)
	b = append(b, `,"onlineCounts":`...)
	b = strconv.AppendInt(b, n.OnlineCounts, 10)
	b = append(b, `,"nodeId":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"wsUrl":`...)
	b = appendString(b, wsURL(n))
	return append(b, '}')
}

// appendListed appends one node of the node list: the pick fields plus draining and
// recentPicks (this dispatcher's assignments not yet reflected in onlineCounts).
func appendListed(b []byte, n *Node, recent int) []byte {
	b = appendPicked(b, n)
	b = b[:len(b)-1]
	b = append(b, `,"draining":`...)
	b = strconv.AppendBool(b, n.Draining)
	b = append(b, `,"recentPicks":`...)
	b = strconv.AppendInt(b, int64(recent), 10)
	return append(b, '}')
}

// appendChatMsg appends e as a chatMsg object (PROTOCOL §3) with seq = e.Seq. msgId is
// a decimal string; clientMsgId and chatTime are left out when absent; the unknown
// members the codec kept in Msg.Extra follow verbatim.
func appendChatMsg(b []byte, e *message.Entry) []byte {
	m := &e.Msg
	b = append(b, `{"senderId":`...)
	b = appendString(b, m.SenderID)
	b = append(b, `,"receiverId":`...)
	b = appendString(b, m.ReceiverID)
	b = append(b, `,"msg":`...)
	b = appendString(b, m.Msg)
	b = append(b, `,"msgType":`...)
	b = strconv.AppendInt(b, int64(m.MsgType), 10)
	if m.MsgID != 0 {
		b = append(b, `,"msgId":"`...)
		b = strconv.AppendInt(b, m.MsgID, 10)
		b = append(b, '"')
	}
	if m.ClientMsgID != "" {
		b = append(b, `,"clientMsgId":`...)
		b = appendString(b, m.ClientMsgID)
	}
	if !m.ChatTime.IsZero() {
		b = append(b, `,"chatTime":"`...)
		b = m.ChatTime.UTC().AppendFormat(b, chatTimeLayout)
		b = append(b, '"')
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	if len(m.Extra) > 0 {
		b = append(b, ',')
		b = append(b, m.Extra...)
	}
	return append(b, '}')
}
