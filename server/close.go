package server

import (
	"github.com/gobwas/ws"

	"imgate/codec"
)

// closeReason is why the server closes a connection. Each maps to one close code and one
// label: the reason text of the close frame and the key of Stats().Closes. (The node
// exports no metrics; Stats is what tests and operators read.)
type closeReason uint8

const (
	closeNone         closeReason = iota
	closeNormal                   // the client sent a close frame
	closeGoingAway                // the node drains or stops
	closeProtocol                 // RFC 6455 violation
	closeUnsupported              // binary message
	closeBadPayload               // invalid UTF-8
	closeTooBig                   // message over the limit
	closeBadInit                  // first message is not a valid CONNECT_INIT
	closeTimeout                  // init or idle timeout
	closeSlowConsumer             // outbound queue over its bound
	closeTryLater                 // replay could not be scheduled
	closeUnauthorized             // token missing, invalid or expired
	closeRateLimited              // rate limit exceeded repeatedly
	closeHTTP                     // refused before the upgrade
	closeOrigin                   // refused before the upgrade: Origin not allowed (403)
	closePendingCap               // refused at accept: its IP has too many connections before CONNECT_INIT (503)
	closeReset                    // the peer went away without a close frame
)

var closeReasons = [...]struct {
	code  ws.StatusCode
	label string
}{
	closeNone:         {0, "none"},
	closeNormal:       {ws.StatusNormalClosure, "normal"},
	closeGoingAway:    {ws.StatusGoingAway, "going_away"},
	closeProtocol:     {ws.StatusProtocolError, "protocol_error"},
	closeUnsupported:  {ws.StatusUnsupportedData, "unsupported_data"},
	closeBadPayload:   {ws.StatusInvalidFramePayloadData, "invalid_payload"},
	closeTooBig:       {ws.StatusMessageTooBig, "message_too_big"},
	closeBadInit:      {codec.CloseBadInit, "bad_init"},
	closeTimeout:      {codec.CloseTimeout, "timeout"},
	closeSlowConsumer: {codec.CloseSlowConsumer, "slow_consumer"},
	closeTryLater:     {1013, "try_again_later"},
	closeUnauthorized: {codec.CloseUnauthorized, "unauthorized"},
	closeRateLimited:  {codec.CloseRateLimited, "rate_limited"},
	closeHTTP:         {0, "http_refused"},
	closeOrigin:       {0, "origin_refused"},
	closePendingCap:   {0, "pending_per_ip"},
	closeReset:        {0, "reset"},
}

// Code is the WebSocket close code sent for r.
func (r closeReason) Code() ws.StatusCode { return closeReasons[r].code }

// String is r's label: the close frame's reason text and its key in Stats().Closes.
func (r closeReason) String() string { return closeReasons[r].label }

// reasonForCode maps a codec close code to a closeReason.
func reasonForCode(c ws.StatusCode) closeReason {
	switch c {
	case ws.StatusProtocolError:
		return closeProtocol
	case ws.StatusUnsupportedData:
		return closeUnsupported
	case ws.StatusInvalidFramePayloadData:
		return closeBadPayload
	case ws.StatusMessageTooBig:
		return closeTooBig
	}
	return closeProtocol
}
