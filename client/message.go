package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"imgate/codec"
)

// Message is a content message (WORDS, IMAGE, VOICE, VIDEO), as sent and as delivered.
type Message struct {
	// Type is codec.Words (the default when Send is given 0), codec.Image, codec.Voice or
	// codec.Video.
	Type codec.MsgType
	// SenderID is set by Send to the Client's user; on delivery it is the author (this
	// user's own id for a message from another of its devices, or replayed after a restart).
	SenderID string
	// ReceiverID is the peer of a one-to-one message; GroupID the group of a group message
	// (PROTOCOL §8). Send needs exactly one of them.
	ReceiverID string
	GroupID    string
	// Msg is the text, or the media URL.
	Msg string
	// MsgID and ChatTime are assigned by the node; Seq is the message's position in this
	// user's inbox (0 without a durable store). All three are ignored by Send.
	MsgID    int64
	ChatTime time.Time
	Seq      int64
	// ClientMsgID is the idempotency key: Send generates one when it is empty, and a
	// message sent again with the same one is acknowledged with the first msgId and
	// delivered once. At most 64 bytes.
	ClientMsgID string
	// Extend is, on delivery, the id of the sender's connection.
	Extend string
	// Extra holds the app's own chatMsg members (media metadata, say), delivered as sent.
	// Each value must be JSON; together at most 4096 bytes (docs/protocol.md §3).
	Extra map[string]json.RawMessage
}

// Ack is the node's acceptance of a sent message: with a durable store, the message is
// persisted and will reach every device of the receiver and the sender.
type Ack struct {
	MsgID       int64
	ClientMsgID string
	ChatTime    time.Time
}

// Receipt is a SIGNED message: SignerID's device shows message MsgID that ReceiverID sent.
// It is live only (not stored, not replayed). The node does not check that MsgID is a
// message between the two users: ignore a receipt for a msgId you did not send to SignerID.
type Receipt struct {
	SignerID    string
	ReceiverID  string
	MsgID       int64
	ClientMsgID string
	ChatTime    time.Time
}

// groupIDKey is the chatMsg member of a group message (PROTOCOL §8): codec.ChatMsg.GroupID,
// never a member of Extra.
const groupIDKey = "groupId"

// toChatMsg converts m to the codec's chatMsg.
func toChatMsg(m *Message) (codec.ChatMsg, error) {
	cm := codec.ChatMsg{
		SenderID: m.SenderID, ReceiverID: m.ReceiverID, GroupID: m.GroupID, Msg: m.Msg, MsgType: m.Type,
		MsgID: m.MsgID, ClientMsgID: m.ClientMsgID,
	}
	keys := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		if k == groupIDKey {
			return cm, fmt.Errorf("%w: Extra may not hold %q: set GroupID", ErrInvalid, k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var extra []byte
	for _, k := range keys {
		if len(extra) > 0 {
			extra = append(extra, ',')
		}
		extra = append(codec.AppendString(extra, k), ':')
		var buf bytes.Buffer
		if err := json.Compact(&buf, m.Extra[k]); err != nil {
			return cm, fmt.Errorf("%w: Extra[%q] is not JSON: %v", ErrInvalid, k, err)
		}
		extra = append(extra, buf.Bytes()...)
	}
	cm.Extra = extra
	return cm, nil
}

// fromChatMsg converts a delivered chatMsg to a Message.
func fromChatMsg(cm *codec.ChatMsg, extend string) Message {
	m := Message{
		Type: cm.MsgType, SenderID: cm.SenderID, ReceiverID: cm.ReceiverID, GroupID: cm.GroupID, Msg: cm.Msg,
		MsgID: cm.MsgID, ChatTime: cm.ChatTime, Seq: cm.Seq, ClientMsgID: cm.ClientMsgID, Extend: extend,
	}
	if len(cm.Extra) == 0 {
		return m
	}
	obj := make([]byte, 0, len(cm.Extra)+2)
	obj = append(append(append(obj, '{'), cm.Extra...), '}')
	var extra map[string]json.RawMessage
	if json.Unmarshal(obj, &extra) != nil {
		return m // the codec bounded and validated it; unreachable in practice
	}
	if len(extra) > 0 {
		m.Extra = extra
	}
	return m
}

// validate checks what the node would refuse, before the message takes a pending slot.
func (m *Message) validate() error {
	if !m.Type.IsContent() {
		return fmt.Errorf("%w: msgType %d is not a content type", ErrInvalid, m.Type)
	}
	if (m.ReceiverID == "") == (m.GroupID == "") {
		return fmt.Errorf("%w: exactly one of ReceiverID and GroupID is required", ErrInvalid)
	}
	if len(m.ClientMsgID) > codec.MaxClientMsgIDBytes {
		return fmt.Errorf("%w: ClientMsgID is over %d bytes", ErrInvalid, codec.MaxClientMsgIDBytes)
	}
	return nil
}
