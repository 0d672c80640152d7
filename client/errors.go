package client

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"imgate/codec"
)

// Errors a Client returns. Match them with errors.Is.
var (
	// ErrClosed: the Client was closed (Close, or Run returned) before the call completed.
	ErrClosed = errors.New("client: closed")
	// ErrTooLarge: the message is over Config.MaxMessageBytes, or the node closed the
	// connection with 1009 when it arrived; sending it again cannot succeed.
	ErrTooLarge = errors.New("client: message over the size limit")
	// ErrNotConnected: Sign was called while no connection is bound (receipts are live only).
	ErrNotConnected = errors.New("client: not connected")
	// ErrInvalid: the message cannot be sent as it is (no receiver, both receiverId and
	// groupId, a clientMsgId over 64 bytes, an Extra value that is not JSON, ...).
	ErrInvalid = errors.New("client: invalid message")
)

// ServerError is an ERROR envelope the node answered a message with (PROTOCOL §4). Code is
// one of the codec.Code* values; the connection stays open.
type ServerError struct {
	Code        string // codec.CodeBadJSON … codec.CodeRateLimited
	Message     string
	ClientMsgID string // the refused message's clientMsgId
}

// Sentinels of the ERROR codes, for errors.Is: errors.Is(err, client.ErrUnavailable).
// Their codes are codec's table (codec.Code*), the one list of them.
var (
	ErrBadJSON     = &ServerError{Code: codec.CodeBadJSON}
	ErrBadType     = &ServerError{Code: codec.CodeBadType}
	ErrBadRequest  = &ServerError{Code: codec.CodeBadRequest}
	ErrForbidden   = &ServerError{Code: codec.CodeForbidden}
	ErrUnavailable = &ServerError{Code: codec.CodeUnavailable}
	ErrRateLimited = &ServerError{Code: codec.CodeRateLimited}
)

func (e *ServerError) Error() string {
	s := "client: server refused the message: " + e.Code
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is matches a sentinel with the same Code.
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Code == e.Code
}

// Retryable reports whether sending the same message again later (with the same
// ClientMsgID) may succeed: unavailable (store or broker down) and rate_limited.
func (e *ServerError) Retryable() bool {
	return e.Code == codec.CodeUnavailable || e.Code == codec.CodeRateLimited
}

// CloseError is a close frame from the node (or 1006 when the connection ended without
// one). Run returns it, wrapped, when the code is permanent (see Permanent).
type CloseError struct {
	Code   int
	Reason string
}

// Sentinels of the permanent close codes, for errors.Is on Run's error.
var (
	ErrUnauthorized = &CloseError{Code: int(codec.CloseUnauthorized)} // 4401: token missing, invalid or expired
	ErrBadInit      = &CloseError{Code: int(codec.CloseBadInit)}      // 4400: CONNECT_INIT refused (empty user id)
)

func (e *CloseError) Error() string {
	s := "client: connection closed with " + strconv.Itoa(e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Is matches a sentinel with the same Code.
func (e *CloseError) Is(target error) bool {
	t, ok := target.(*CloseError)
	return ok && t.Code == e.Code
}

// Permanent reports whether reconnecting cannot help, so the Client stops (docs/client.md):
//
//	4401 token missing, invalid or expired — Config.Token already gave its best token
//	4400 CONNECT_INIT refused — the user id is empty or the client is broken
//	1002, 1003, 1007 protocol error, binary message, invalid UTF-8 — client and node disagree
//	     on the framing; the same bytes would be refused again
//	1008 policy violation
//
// Every other code is transient: 1000, 1001 (the node drains: ask the dispatcher again),
// 1006 (no close frame), 1011, 1012, 1013 (replay could not run), 4408 (timeout), 4429
// (rate limit: the backoff slows the client down), 4503 (slow consumer). 1009 (a message
// over the node's limit) is transient for the connection and final for that message: its
// Send fails with ErrTooLarge and the others are resent.
func (e *CloseError) Permanent() bool {
	switch e.Code {
	case int(codec.CloseUnauthorized), int(codec.CloseBadInit), 1002, 1003, 1007, 1008:
		return true
	}
	return false
}

// HTTPError is an HTTP answer other than success: from the dispatcher's pick route, or a
// node refusing the WebSocket upgrade.
type HTTPError struct {
	URL    string
	Status int
	// RetryAfter is the dispatcher's advice on a 503: the Retry-After header (seconds or
	// an HTTP date) or data.retryAfterMs, the larger. The Client waits this long plus its
	// own random backoff before asking again.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("client: %s answered HTTP %d", e.URL, e.Status)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Permanent reports whether asking again cannot help: any 4xx except 408 and 429 (a wrong
// URL, path or origin, a Host the dispatcher does not serve). 5xx, 408 and 429 are transient.
func (e *HTTPError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 429
}

// permanent reports whether err ends Run.
func permanent(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Permanent()
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Permanent()
	}
	return false
}
