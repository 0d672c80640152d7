package server

import (
	"strconv"

	"github.com/panjf2000/gnet/v2"

	"imgate/codec"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stateHandshake connState = iota // waiting for the HTTP upgrade
	stateAwaitInit                  // upgraded, waiting for CONNECT_INIT
	stateBound                      // bound to a user
	stateClosing                    // a close was decided; nothing more is read
)

// conn is one client connection. Its fields are grouped by owner and ordered so that
// the struct stays in the 128-byte size class: an idle connection's cost is a headline
// figure.
type conn struct {
	// Immutable after open.
	gc   gnet.Conn
	loop *loop
	id   uint64

	// Owned by the loop goroutine.
	parser codec.Parser
	// user is written once on the loop before the connection enters the session
	// table; other goroutines read it only through the table (happens-after).
	user string
	// timer is the init deadline (Unix ns) until CONNECT_INIT, then the time of the
	// last frame from the client, which the idle timeout counts from.
	timer int64
	slot  int32 // index in loop.conns
	// tokens is the rate limit's bucket: refilled by the time between frames, spent by
	// content and SIGNED messages, negative while the client sends over the limit.
	tokens  float32
	state   connState
	closed  bool // OnClose ran; drop everything addressed to it
	pending bool // counted in Server.pending (no CONNECT_INIT yet)

	// Guarded by loop.mu.
	overflow bool  // a 4503 (or 1013) close is queued; further frames are dropped
	queued   int32 // bytes in loop.q addressed to this connection
}

// idString is the connection id as clients see it (extend).
func (c *conn) idString() string { return strconv.FormatUint(c.id, 10) }
