package dispatch

import (
	"net"
	"strconv"

	"imgate/codec"
	"imgate/message"
)

// The responses are small and fixed in shape, so they are appended by hand: no
// reflection on the pick path. Strings are escaped by codec.AppendString and history
// messages encoded by codec.AppendChatMsg, so they read exactly as on the WebSocket.

// appendOKPrefix starts a success answer; the caller appends data and then '}'.
func appendOKPrefix(b []byte) []byte {
	return append(b, `{"status":200,"msg":"OK","success":true,"data":`...)
}

// appendError appends a whole error answer: {"status":N,"msg":M,"success":false,"data":null}.
func appendError(b []byte, status int, msg string) []byte {
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"msg":`...)
	b = codec.AppendString(b, msg)
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
	b = codec.AppendString(b, n.IP)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(n.Port), 10)
	b = append(b, `,"onlineCounts":`...)
	b = strconv.AppendInt(b, n.OnlineCounts, 10)
	b = append(b, `,"nodeId":`...)
	b = codec.AppendString(b, n.ID)
	b = append(b, `,"wsUrl":`...)
	b = codec.AppendString(b, wsURL(n))
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

// appendEntry appends e as a chatMsg object with seq = e.Seq, encoded by the wire
// encoder (codec.AppendChatMsg): a history message has the form of a live delivery.
func appendEntry(b []byte, e *message.Entry) []byte {
	m := e.Msg
	m.Seq = e.Seq
	return codec.AppendChatMsg(b, &m)
}
