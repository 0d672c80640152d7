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

// MaxClientMsgID is the longest clientMsgId in bytes (PROTOCOL §3).
const MaxClientMsgID = codec.MaxClientMsgIDBytes

// MaxUserID is the longest senderId or receiverId a Record may carry (what a node
// accepts): longer keys would not fit the stores' indexes.
const MaxUserID = 128

// Validate reports whether every store can persist r: msgId positive, senderId and
// receiverId set, clientMsgId at most [MaxClientMsgID] bytes, and every text field
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
	case m.ReceiverID == "":
		return fmt.Errorf("%w: msgId %d: receiverId is empty", ErrInvalid, m.MsgID)
	case len(m.SenderID) > MaxUserID || len(m.ReceiverID) > MaxUserID:
		return fmt.Errorf("%w: msgId %d: senderId or receiverId longer than %d bytes", ErrInvalid, m.MsgID, MaxUserID)
	case len(m.ClientMsgID) > MaxClientMsgID:
		return fmt.Errorf("%w: msgId %d: clientMsgId longer than %d bytes", ErrInvalid, m.MsgID, MaxClientMsgID)
	}
	for _, f := range [...]struct {
		name, val string
	}{
		{"senderId", m.SenderID}, {"receiverId", m.ReceiverID}, {"msg", m.Msg}, {"clientMsgId", m.ClientMsgID},
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
