package codec

import "time"

// MsgType is chatMsg.msgType (PROTOCOL §4).
type MsgType int

// Message types. Values 0–4, 8 and 9 are the original system's MsgTypeEnum; 11 and 12 are imgate's.
const (
	ConnectInit MsgType = 0
	Words       MsgType = 1
	Image       MsgType = 2
	Voice       MsgType = 3
	Video       MsgType = 4
	Signed      MsgType = 8
	Keepalive   MsgType = 9
	Ack         MsgType = 11
	Error       MsgType = 12
)

// IsContent reports whether t is a content message (WORDS, IMAGE, VOICE, VIDEO).
func (t MsgType) IsContent() bool { return t >= Words && t <= Video }

// ChatMsg is the chatMsg object of the envelope.
type ChatMsg struct {
	SenderID   string
	ReceiverID string
	// GroupID names the group of a group message (PROTOCOL §8): set instead of
	// ReceiverID by the sender, and on every delivered copy.
	GroupID     string
	Msg         string
	MsgType     MsgType
	MsgID       int64 // snowflake id; a decimal string on the wire, a number accepted on input; 0 = absent
	ClientMsgID string
	ChatTime    time.Time // server-assigned; zero = absent
	Seq         int64     // inbox position of the receiving user; 0 = absent
	// Extra holds the members of chatMsg that imgate does not know, verbatim, as a
	// comma-separated list of JSON members without braces (`"w":640,"h":480`); nil when none.
	Extra []byte
}

// NodeInfo is the serverNode object: the original NettyServerNode fields.
type NodeInfo struct {
	IP           string
	Port         int
	OnlineCounts int64
}

// ErrorBody is the error object of an ERROR envelope.
type ErrorBody struct {
	Code    string
	Message string
}

// Envelope is the DataContent object, one per text message (PROTOCOL §3).
type Envelope struct {
	ChatMsg    *ChatMsg
	ServerNode *NodeInfo
	Extend     string
	Token      string
	Cursor     *int64 // nil = absent ("no replay")
	// CursorAhead marks the ACK of a CONNECT_INIT whose cursor was above the user's
	// newest seq (PROTOCOL §5): the ACK carries the real newest seq; the device resets.
	CursorAhead bool
	Error       *ErrorBody
}
