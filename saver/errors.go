package saver

import "errors"

// ErrFull is returned by [Batcher.Submit] when the bounded queue is full. The node answers
// the sender ERROR unavailable; the client retries later with the same clientMsgId.
var ErrFull = errors.New("saver: queue full")

// errInvalidConfig is wrapped by the errors of a store configuration that cannot work.
var errInvalidConfig = errors.New("saver: invalid config")
