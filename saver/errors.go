package saver

import "errors"

// ErrFull is returned by [Batcher.Submit] when the bounded queue is full. The node answers
// the sender ERROR unavailable; the client retries later with the same clientMsgId.
var ErrFull = errors.New("saver: queue full")

// ErrInvalid is wrapped by errors about a bad argument: a Record without msgId, sender or
// receiver, a clientMsgId over 64 bytes, a non-positive limit, a bad config. A batch with
// an invalid Record fails as a whole and nothing of it is persisted.
var ErrInvalid = errors.New("saver: invalid argument")

// MaxClientMsgID is the longest clientMsgId in bytes (PROTOCOL §3).
const MaxClientMsgID = 64

// MaxUserID is the longest senderId or receiverId a Record may carry (what a node
// accepts): longer keys would not fit the stores' indexes.
const MaxUserID = 128
