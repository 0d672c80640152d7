package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"imgate/codec"
	"imgate/message"

	"github.com/valyala/fasthttp"
)

// Routes served by the dispatcher.
const (
	routeLegacyPick = "/getNettyOnlineInfo"
	routePick       = "/api/v1/nodes/pick"
	routeNodes      = "/api/v1/nodes"
	routeMessages   = "/api/v1/messages"
	routePresence   = "/api/v1/presence"
	routeHealth     = "/healthz"
	routeDevLogin   = "/api/v1/dev/login"
	routeMetrics    = "/metrics"
	routeReady      = "/readyz"
)

// retryAfterNoNode is the Retry-After (seconds) of a pick with no live node: about the
// time a restarted node needs to register and be seen.
const retryAfterNoNode = "2"

// maxUserIDLen bounds userId and peerId in queries: ids are short keys, and a huge one
// is refused before it reaches a store or Redis.
const maxUserIDLen = 256

// Answer texts of the errors clients may branch on.
const (
	msgNoLiveNode = "no live node"
	msgNotFound   = "not found"
	msgMethod     = "method not allowed"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// handle routes one request. Unknown paths get 404, known paths with another method
// 405 with Allow; both in the error shape.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	defer func() {
		if r := recover(); r != nil {
			s.fail(ctx, fasthttp.StatusInternalServerError, "internal error", fmt.Errorf("dispatch: panic: %v", r))
		}
	}()
	path := string(ctx.Path())
	if path != routeHealth && path != routeReady && !s.access.hostAllowed(ctx.Host()) {
		s.fail(ctx, fasthttp.StatusMisdirectedRequest, msgBadHost, nil)
		return
	}
	switch path {
	case routeLegacyPick:
		if s.allow(ctx, false) {
			s.handlePick(ctx, true)
		}
	case routePick:
		if s.allow(ctx, true) {
			s.handlePick(ctx, false)
		}
	case routeNodes:
		if s.allow(ctx, true) {
			s.handleNodes(ctx)
		}
	case routeMessages:
		switch {
		case ctx.IsPost():
			s.handleSend(ctx)
		case ctx.IsGet() || ctx.IsHead():
			s.handleMessages(ctx)
		default:
			ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
			s.fail(ctx, fasthttp.StatusMethodNotAllowed, msgMethod, nil)
		}
	case routeBroadcast:
		if s.allow(ctx, false) {
			s.handleBroadcast(ctx)
		}
	case routePresence:
		if s.allow(ctx, true) {
			s.handlePresence(ctx)
		}
	case routeHealth:
		if s.allow(ctx, true) {
			s.answerHealth(ctx, s.health.Live)
		}
	case routeReady:
		if s.allow(ctx, true) {
			s.answerHealth(ctx, s.health.Ready)
		}
	case routeMetrics:
		if s.metrics == nil {
			s.fail(ctx, fasthttp.StatusNotFound, msgNotFound, nil)
		} else if s.allow(ctx, true) {
			s.metrics(ctx)
		}
	case routeDevLogin:
		if s.devLogin == nil {
			s.fail(ctx, fasthttp.StatusNotFound, msgNotFound, nil)
		} else if s.allow(ctx, false) {
			s.handleDevLogin(ctx)
		}
	default:
		if rest, ok := strings.CutPrefix(path, routeGroups); ok {
			s.handleGroup(ctx, rest)
		} else if strings.HasPrefix(path, routeAdminPrefix) {
			s.handleAdmin(ctx, path)
		} else if f, ok := s.pageFileFor(path); !ok {
			s.fail(ctx, fasthttp.StatusNotFound, msgNotFound, nil)
		} else if s.allow(ctx, true) {
			s.servePage(ctx, f)
		}
	}
}

// allow reports whether the method fits the route (GET or HEAD when get, else POST)
// and answers 405 when it does not.
func (s *Server) allow(ctx *fasthttp.RequestCtx, get bool) bool {
	if get && (ctx.IsGet() || ctx.IsHead()) || !get && ctx.IsPost() {
		return true
	}
	if get {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
	} else {
		ctx.Response.Header.Set("Allow", "POST")
	}
	s.fail(ctx, fasthttp.StatusMethodNotAllowed, msgMethod, nil)
	return false
}

// handlePick answers both pick routes. userId is optional on both; on the legacy POST
// route it may come from the query or a urlencoded form body.
func (s *Server) handlePick(ctx *fasthttp.RequestCtx, legacy bool) {
	userID := ctx.QueryArgs().Peek("userId")
	if len(userID) == 0 && legacy {
		userID = ctx.PostArgs().Peek("userId")
	}
	n, ok := s.picker.Pick(string(userID))
	if !ok {
		// RFC 9110 §10.2.3: when to ask again. A client adds its own random jitter,
		// so that the clients of a lost cluster do not return in step.
		ctx.Response.Header.Set("Retry-After", retryAfterNoNode)
		s.fail(ctx, fasthttp.StatusServiceUnavailable, msgNoLiveNode, nil)
		return
	}
	s.picks.add(n.ID)
	bp := bufPool.Get().(*[]byte)
	b := appendOKPrefix((*bp)[:0])
	b = appendPicked(b, &n)
	b = append(b, '}')
	s.write(ctx, fasthttp.StatusOK, b)
	*bp = b
	bufPool.Put(bp)
}

// handleNodes lists every node of the view, draining ones included, ordered by ID:
// data = {"nodes":[{ip,port,onlineCounts,nodeId,wsUrl,draining,recentPicks}]}.
func (s *Server) handleNodes(ctx *fasthttp.RequestCtx) {
	view, recent := s.picker.snapshot()
	nodes := slices.Clone(view)
	slices.SortFunc(nodes, func(a, b Node) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	b := appendOKPrefix(make([]byte, 0, 128+160*len(nodes)))
	b = append(b, `{"nodes":[`...)
	for i := range nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendListed(b, &nodes[i], recent[nodes[i].ID])
	}
	b = append(b, "]}}"...)
	s.write(ctx, fasthttp.StatusOK, b)
}

// handleMessages answers GET /api/v1/messages (authenticated as Config.Auth and
// Config.APIKey say: 401 without a good credential, 403 for another user's token):
// data = {"messages":[chatMsg…], "hasMore":bool, "nextBeforeSeq":N|null}, newest
// first. nextBeforeSeq is the seq of the oldest message of the page when older ones
// exist (pass it as beforeSeq for the next page), null otherwise. limit defaults to 50
// and is clamped to Config.HistoryLimit, however large; limit < 1 or a non-integer is 400.
func (s *Server) handleMessages(ctx *fasthttp.RequestCtx) {
	q := ctx.QueryArgs()
	who, ok := s.authenticate(ctx)
	if !ok {
		return
	}
	userID, ok := s.idParam(ctx, "userId", true)
	if !ok || !s.permit(ctx, who, userID) {
		return
	}
	peerID, ok := s.idParam(ctx, "peerId", false)
	if !ok {
		return
	}
	groupID, ok := s.idParam(ctx, "groupId", false)
	if !ok {
		return
	}
	if peerID != "" && groupID != "" {
		s.fail(ctx, fasthttp.StatusBadRequest, "peerId and groupId exclude each other", nil)
		return
	}
	var beforeSeq int64
	if v := q.Peek("beforeSeq"); len(v) > 0 {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			s.fail(ctx, fasthttp.StatusBadRequest, "beforeSeq must be a non-negative integer", nil)
			return
		}
		beforeSeq = n
	}
	limit := min(DefaultHistoryPage, s.cfg.HistoryLimit)
	if v := q.Peek("limit"); len(v) > 0 {
		limit, ok = s.limitParam(ctx, v)
		if !ok {
			return
		}
	}
	if s.history == nil || groupID != "" && s.groups == nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "history not available: no message store", nil)
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.BackendTimeout)
	// One more than the page tells whether older messages exist.
	var entries []message.Entry
	var err error
	if groupID != "" {
		entries, err = s.groups.GroupHistory(cctx, userID, groupID, beforeSeq, limit+1)
	} else {
		entries, err = s.history.History(cctx, userID, peerID, beforeSeq, limit+1)
	}
	cancel()
	if err != nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "history unavailable",
			fmt.Errorf("dispatch: history of %q: %w", userID, err))
		return
	}
	hasMore := len(entries) > limit
	if hasMore {
		entries = entries[:limit]
	}
	b := appendOKPrefix(make([]byte, 0, 256+256*len(entries)))
	b = append(b, `{"messages":[`...)
	for i := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntry(b, &entries[i])
	}
	b = append(b, `],"hasMore":`...)
	b = strconv.AppendBool(b, hasMore)
	b = append(b, `,"nextBeforeSeq":`...)
	if hasMore {
		b = strconv.AppendInt(b, entries[len(entries)-1].Seq, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, "}}"...)
	s.write(ctx, fasthttp.StatusOK, b)
}

// handlePresence answers GET /api/v1/presence (authenticated as history is):
// data = {"userId":U,"online":bool,"nodes":{nodeId:devices}} (nodes with a positive
// count, by node ID; {} when offline).
func (s *Server) handlePresence(ctx *fasthttp.RequestCtx) {
	who, ok := s.authenticate(ctx)
	if !ok {
		return
	}
	userID, ok := s.idParam(ctx, "userId", true)
	if !ok || !s.permit(ctx, who, userID) {
		return
	}
	if s.presence == nil {
		s.fail(ctx, fasthttp.StatusNotFound, "presence not available", nil)
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.BackendTimeout)
	where, err := s.presence.Presence(cctx, userID)
	cancel()
	if err != nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "presence unavailable",
			fmt.Errorf("dispatch: presence of %q: %w", userID, err))
		return
	}
	ids := make([]string, 0, len(where))
	for id, n := range where {
		if n > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	b := appendOKPrefix(make([]byte, 0, 128+48*len(ids)))
	b = append(b, `{"userId":`...)
	b = codec.AppendString(b, userID)
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, len(ids) > 0)
	b = append(b, `,"nodes":{`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = codec.AppendString(b, id)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(where[id]), 10)
	}
	b = append(b, "}}}"...)
	s.write(ctx, fasthttp.StatusOK, b)
}

// limitParam parses the limit of a history page and clamps it to Config.HistoryLimit:
// a positive integer too large for an int is clamped like any other large value
// (PROTOCOL §5), zero, negative and non-numeric values are 400.
func (s *Server) limitParam(ctx *fasthttp.RequestCtx, v []byte) (int, bool) {
	n, err := strconv.Atoi(string(v))
	if errors.Is(err, strconv.ErrRange) && n > 0 && allDigits(bytes.TrimPrefix(v, []byte("+"))) {
		// Atoi answers the largest int with ErrRange for a positive overflow, and
		// stops at the overflow before it reads the rest: check that the rest is digits.
		err = nil
	}
	if err != nil || n < 1 {
		s.fail(ctx, fasthttp.StatusBadRequest, "limit must be a positive integer", nil)
		return 0, false
	}
	return min(n, s.cfg.HistoryLimit), true
}

// allDigits reports whether b is a non-empty run of ASCII digits.
func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// idParam reads a user id from the query: required ones must be present, none longer
// than maxUserIDLen. It answers 400 and returns false otherwise.
func (s *Server) idParam(ctx *fasthttp.RequestCtx, name string, required bool) (string, bool) {
	v := ctx.QueryArgs().Peek(name)
	switch {
	case len(v) == 0 && required:
		s.fail(ctx, fasthttp.StatusBadRequest, name+" is required", nil)
		return "", false
	case len(v) > maxUserIDLen:
		s.fail(ctx, fasthttp.StatusBadRequest, name+" is too long", nil)
		return "", false
	}
	return string(v), true
}

// write sends b as the JSON body with status.
func (s *Server) write(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

// fail answers status with the error shape {"status","msg","success":false,"data":null}
// and logs it: the one place where an answered error is logged. err carries the cause
// for the log; msg is what the client sees.
func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, msg string, err error) {
	var b [160]byte
	s.write(ctx, status, appendError(b[:0], status, msg))
	if status < 500 {
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("dispatch: request refused", "method", string(ctx.Method()),
				"path", string(ctx.Path()), "status", status, "msg", msg)
		}
		return
	}
	if suppressed, ok := s.errLog.allow(time.Now()); ok {
		attrs := []any{"method", string(ctx.Method()), "path", string(ctx.Path()),
			"status", status, "msg", msg}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		s.log.Error("dispatch: request failed", attrs...)
	}
}

// handleParseError answers requests fasthttp could not read, in the error shape.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, "bad request"
	var small *fasthttp.ErrSmallBuffer
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body too large"
	case errors.As(err, &small):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large"
	case errors.As(err, &timeout) && timeout.Timeout():
		status, msg = fasthttp.StatusRequestTimeout, "request timeout"
	}
	s.fail(ctx, status, msg, nil)
}

// logThrottle lets one 5xx log line through per second and counts the others.
type logThrottle struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Int64
}

// allow reports whether a line may be logged at now, and how many were suppressed
// since the last one.
func (t *logThrottle) allow(now time.Time) (int64, bool) {
	last := t.last.Load()
	if now.UnixNano()-last < int64(time.Second) || !t.last.CompareAndSwap(last, now.UnixNano()) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
