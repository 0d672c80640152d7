package message

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"imgate/codec"
)

// ErrInvalid is wrapped by errors about a record (or an argument) no store can take: a
// Record without msgId, sender or receiver, ids over their limits, text that is not UTF-8
// or holds NUL, a non-positive limit.
var ErrInvalid = errors.New("message: invalid")

// ErrUnknownGroup is returned by group reads and changes of a group that does not exist.
var ErrUnknownGroup = errors.New("message: unknown group")

// ErrGroupFull is returned by a membership change that would pass the member limit.
var ErrGroupFull = errors.New("message: too many group members")

// MaxClientMsgID is the longest clientMsgId in bytes (PROTOCOL §3).
const MaxClientMsgID = codec.MaxClientMsgIDBytes

// MaxUserID is the longest senderId or receiverId a Record may carry (what a node
// accepts): longer keys would not fit the stores' indexes.
const MaxUserID = 128

// Validate reports whether every store can persist r (or, for a Broadcast, every node
// can carry it): msgId positive, senderId set, exactly one of receiverId and groupId
// set (neither for a Broadcast), clientMsgId at most [MaxClientMsgID] bytes, and every text field
// (ids, msg, Extra, Node) valid UTF-8 without NUL (PostgreSQL TEXT cannot hold NUL).
// The error wraps [ErrInvalid]. Nodes validate before they submit, so one bad message
// never fails a batch; the node answers it bad_request.
func (r *Record) Validate() error {
	m := &r.Msg
	switch {
	case m.MsgID <= 0:
		return fmt.Errorf("%w: msgId %d is not positive", ErrInvalid, m.MsgID)
	case m.SenderID == "":
		return fmt.Errorf("%w: msgId %d: senderId is empty", ErrInvalid, m.MsgID)
	case r.Broadcast && (m.ReceiverID != "" || m.GroupID != ""):
		return fmt.Errorf("%w: msgId %d: a broadcast has no receiverId or groupId", ErrInvalid, m.MsgID)
	case !r.Broadcast && (m.ReceiverID == "") == (m.GroupID == ""):
		return fmt.Errorf("%w: msgId %d: want exactly one of receiverId and groupId", ErrInvalid, m.MsgID)
	case len(m.SenderID) > MaxUserID || len(m.ReceiverID) > MaxUserID || len(m.GroupID) > MaxUserID:
		return fmt.Errorf("%w: msgId %d: senderId, receiverId or groupId longer than %d bytes", ErrInvalid, m.MsgID, MaxUserID)
	case len(m.ClientMsgID) > MaxClientMsgID:
		return fmt.Errorf("%w: msgId %d: clientMsgId longer than %d bytes", ErrInvalid, m.MsgID, MaxClientMsgID)
	}
	for _, f := range [...]struct {
		name, val string
	}{
		{"senderId", m.SenderID}, {"receiverId", m.ReceiverID}, {"groupId", m.GroupID}, {"msg", m.Msg}, {"clientMsgId", m.ClientMsgID},
		{"node", r.Node},
	} {
		if !utf8.ValidString(f.val) || strings.IndexByte(f.val, 0) >= 0 {
			return fmt.Errorf("%w: msgId %d: %s is not UTF-8 text without NUL", ErrInvalid, m.MsgID, f.name)
		}
	}
	if !utf8.Valid(m.Extra) || bytes.IndexByte(m.Extra, 0) >= 0 {
		return fmt.Errorf("%w: msgId %d: extra is not UTF-8 text without NUL", ErrInvalid, m.MsgID)
	}
	return nil
}

// ValidID reports whether id is a valid user or group id: not empty, at most
// [MaxUserID] bytes, UTF-8 without NUL (what every store can keep).
func ValidID(id string) bool {
	return id != "" && len(id) <= MaxUserID && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}
