package server

import (
	"strconv"
	"sync/atomic"
	"time"
)

// closeLogInterval is the least time between two log lines of one close reason.
const closeLogInterval = 10 * time.Second

// closeLog rate-limits the log lines of one close reason and remembers the count at
// the last line, so that each line says how many closes it stands for.
type closeLog struct {
	every  logEvery
	logged atomic.Int64 // Stats().Closes of the reason at the last line
}

// loggedCloses are the reasons closeConn logs: every close the server decides because
// of the client or of its own limits. Not logged: the client's own close, the node's
// shutdown, a peer gone without a close (none is a refusal), and the Origin and
// per-IP refusals, which log their own line with what they refused.
var loggedCloses = [closeReset + 1]bool{
	closeProtocol: true, closeUnsupported: true, closeBadPayload: true, closeTooBig: true,
	closeBadInit: true, closeTimeout: true, closeSlowConsumer: true, closeTryLater: true,
	closeUnauthorized: true, closeRateLimited: true, closeHTTP: true,
}

var stateNames = [...]string{
	stateHandshake: "handshake", stateAwaitInit: "await_init", stateBound: "bound", stateClosing: "closing",
}

// logClose logs that c is closed for r, at warn level, at most once per reason every
// closeLogInterval: during a storm of failures (a reconnect storm against a full
// replay queue, thousands of slow consumers) an operator sees why without a line per
// connection. The line carries the total of that reason and how many closes it stands
// for since the previous line (the metric imgate_closes_total carries every one).
// detail says more when the caller knows it (the HTTP answer of a refused upgrade).
// It runs on c's loop, after the close was counted; the common case is one atomic load.
func (s *Server) logClose(c *conn, r closeReason, detail string) {
	if !loggedCloses[r] {
		return
	}
	lg := &s.stats.closeLogs[r]
	if !lg.every.Allow() {
		return
	}
	total := s.stats.closes[r].Load()
	args := []any{"reason", r.String(), "code", int(r.Code()), "state", stateNames[c.state], "conn", c.id,
		"ip", remoteIP(c.gc.RemoteAddr()).String(), "total", total, "since_last_line", total - lg.logged.Swap(total)}
	if c.user != "" {
		args = append(args, "user", c.user)
	}
	if detail != "" {
		args = append(args, "detail", detail)
	}
	s.log.Warn("connection closed by the server (one line per reason at most every 10s)", args...)
}

// refuseUpgrade answers a handshake that cannot be upgraded with an HTTP error (status
// and reason, the body), logs it (rate-limited, with more in detail) and closes c. It
// runs on c's loop.
func (s *Server) refuseUpgrade(c *conn, status int, reason, detail string) {
	l := c.loop
	l.out = appendHTTPError(l.out, status, reason)
	why := strconv.Itoa(status) + " " + reason
	if detail != "" {
		why += ": " + detail
	}
	l.closeConnDetail(c, closeHTTP, why)
}
