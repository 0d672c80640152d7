package codec

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"
)

// ErrIncomplete is returned by ParseUpgrade while b does not yet hold a whole
// request head (no CRLFCRLF yet). Call again when more bytes have arrived.
var ErrIncomplete = errors.New("codec: incomplete handshake")

// HTTPError is a handshake failure to answer with an HTTP response before the
// upgrade: write AppendHTTPError(dst, e.Status, e.Reason) and close.
type HTTPError struct {
	Status int    // HTTP status code: 400, 405, 426 or 431
	Reason string // short human-readable explanation, used as the response body
}

// Error implements error.
func (e *HTTPError) Error() string {
	return "codec: handshake: " + strconv.Itoa(e.Status) + " " + e.Reason
}

// CloseError is a WebSocket protocol failure detected by Parser.Next: the
// connection must be closed with a close frame carrying Code
// (AppendClose(dst, e.Code, e.Reason)).
type CloseError struct {
	Code   ws.StatusCode // 1002, 1003, 1007 or 1009
	Reason string        // short explanation, at most a few dozen bytes (fits a close frame)
}

// Error implements error.
func (e *CloseError) Error() string {
	return "codec: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// DecodeError is an envelope that could not be decoded. Code is the ERROR code
// to answer with (PROTOCOL §4): "bad_json", "bad_type" or "bad_request".
type DecodeError struct {
	Code    string
	Message string
}

// Error implements error.
func (e *DecodeError) Error() string {
	return "codec: " + e.Code + ": " + e.Message
}

// ERROR codes: the error.code of an ERROR envelope (PROTOCOL §4). This is the one
// table of them; DecodeError.Code holds one of the first three.
const (
	CodeBadJSON     = "bad_json"     // not one JSON object
	CodeBadType     = "bad_type"     // msgType missing, unknown or server-only
	CodeBadRequest  = "bad_request"  // a field missing, oversized or of the wrong JSON type
	CodeForbidden   = "forbidden"    // senderId is not the connection's user
	CodeUnavailable = "unavailable"  // store or broker cannot take it now: retry with the same clientMsgId
	CodeRateLimited = "rate_limited" // over the connection's rate limit: resend later
)

// Close codes beyond RFC 6455 (PROTOCOL §4): the one table of them, for the node that
// sends them and the clients that decide what to do on each (imgate/client).
const (
	CloseBadInit      ws.StatusCode = 4400 // first message is not a valid CONNECT_INIT
	CloseUnauthorized ws.StatusCode = 4401 // token missing, invalid or expired
	CloseTimeout      ws.StatusCode = 4408 // init or idle timeout
	CloseRateLimited  ws.StatusCode = 4429 // rate limit exceeded repeatedly
	CloseSlowConsumer ws.StatusCode = 4503 // outbound queue over its bound
)
