package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"imgate/codec"

	"github.com/valyala/fasthttp"
)

// Admin routes: the server API key only (never a user token), see handleAdmin.
const (
	routeAdminPrefix   = "/api/v1/admin/"
	routeAdminNodes    = routeAdminPrefix + "nodes"
	routeAdminSessions = routeAdminPrefix + "sessions"
	routeAdminKick     = routeAdminPrefix + "kick"
	routeAdminDrain    = routeAdminPrefix + "drain"
)

// maxDrainWindow bounds the window of a drain request.
const maxDrainWindow = time.Hour

// msgAdminNoKey answers the admin routes of a dispatcher without an API key: they must
// never be open, unlike history and presence in development.
const msgAdminNoKey = "admin routes need a server API key (--api-key)"

// Session is one connection of a user, as the admin routes list it.
type Session struct {
	NodeID     string // the node holding it
	ConnID     string // its connection id (the extend of its CONNECT_INIT ACK)
	RemoteAddr string // the peer address the node sees
}

// Admin carries the operator's actions to the nodes. `imgate dispatch` implements it
// over each node's admin routes (the adminUrl of its znode), standalone over its own
// node. Calls are bounded by Config.BackendTimeout.
type Admin interface {
	// Sessions returns userID's connections on every node.
	Sessions(ctx context.Context, userID string) ([]Session, error)
	// Kick closes userID's connections on every node (close 1008 "kicked") and
	// returns how many were closed.
	Kick(ctx context.Context, userID string) (int, error)
	// Drain starts draining node nodeID: it leaves the pick, then closes its clients
	// with 1001 spread over window (0: the node's --drain-window). It returns once the
	// node accepted the request, not when it is drained.
	Drain(ctx context.Context, nodeID string, window time.Duration) error
}

// ErrUnknownNode is what Admin.Drain returns (wrapped) for a node ID not in the view.
var ErrUnknownNode = errors.New("unknown node")

// handleAdmin answers the admin routes. Every one needs the server API key as bearer
// credential: without Config.APIKey they answer 403, without a credential 401, with a
// user token 403.
//
//	GET  /api/v1/admin/nodes                     the node list of GET /api/v1/nodes
//	GET  /api/v1/admin/sessions?userId=U         data={"userId":U,"sessions":[{"nodeId","connId","remoteAddr"}]}
//	POST /api/v1/admin/kick?userId=U             data={"userId":U,"closed":N}
//	POST /api/v1/admin/drain?nodeId=ID&window=D  data={"nodeId":ID,"draining":true}
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx, path string) {
	get := path == routeAdminNodes || path == routeAdminSessions
	known := get || path == routeAdminKick || path == routeAdminDrain
	if !known {
		s.fail(ctx, fasthttp.StatusNotFound, msgNotFound, nil)
		return
	}
	if !s.allow(ctx, get) || !s.adminAuthenticated(ctx) {
		return
	}
	if path == routeAdminNodes {
		s.handleNodes(ctx)
		return
	}
	if s.admin == nil {
		s.fail(ctx, fasthttp.StatusNotFound, "admin not available", nil)
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.BackendTimeout)
	defer cancel()
	switch path {
	case routeAdminSessions:
		s.handleAdminSessions(ctx, cctx)
	case routeAdminKick:
		s.handleAdminKick(ctx, cctx)
	default:
		s.handleAdminDrain(ctx, cctx)
	}
}

// adminAuthenticated answers 403 or 401 and returns false unless the request carries
// the API key.
func (s *Server) adminAuthenticated(ctx *fasthttp.RequestCtx) bool {
	if !s.access.hasKey {
		s.fail(ctx, fasthttp.StatusForbidden, msgAdminNoKey, nil)
		return false
	}
	who, ok := s.authenticate(ctx)
	if !ok {
		return false
	}
	if !who.key {
		s.fail(ctx, fasthttp.StatusForbidden, "admin routes take the server API key, not a user token", nil)
		return false
	}
	return true
}

func (s *Server) handleAdminSessions(ctx *fasthttp.RequestCtx, cctx context.Context) {
	userID, ok := s.idParam(ctx, "userId", true)
	if !ok {
		return
	}
	sessions, err := s.admin.Sessions(cctx, userID)
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadGateway, "sessions unavailable: "+err.Error(), err)
		return
	}
	b := appendOKPrefix(make([]byte, 0, 128+96*len(sessions)))
	b = append(b, `{"userId":`...)
	b = codec.AppendString(b, userID)
	b = append(b, `,"sessions":[`...)
	for i, ses := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"nodeId":`...)
		b = codec.AppendString(b, ses.NodeID)
		b = append(b, `,"connId":`...)
		b = codec.AppendString(b, ses.ConnID)
		b = append(b, `,"remoteAddr":`...)
		b = codec.AppendString(b, ses.RemoteAddr)
		b = append(b, '}')
	}
	b = append(b, "]}}"...)
	s.write(ctx, fasthttp.StatusOK, b)
}

func (s *Server) handleAdminKick(ctx *fasthttp.RequestCtx, cctx context.Context) {
	userID, ok := s.idParam(ctx, "userId", true)
	if !ok {
		return
	}
	n, err := s.admin.Kick(cctx, userID)
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadGateway, "kick failed: "+err.Error(), err)
		return
	}
	s.log.Info("dispatch: admin kick", "user", userID, "closed", n)
	b := appendOKPrefix(make([]byte, 0, 96))
	b = append(b, `{"userId":`...)
	b = codec.AppendString(b, userID)
	b = append(b, `,"closed":`...)
	b = fmt.Appendf(b, "%d}}", n)
	s.write(ctx, fasthttp.StatusOK, b)
}

func (s *Server) handleAdminDrain(ctx *fasthttp.RequestCtx, cctx context.Context) {
	nodeID := string(ctx.QueryArgs().Peek("nodeId"))
	if nodeID == "" || len(nodeID) > maxUserIDLen || strings.ContainsAny(nodeID, "/?#") {
		s.fail(ctx, fasthttp.StatusBadRequest, "nodeId is required", nil)
		return
	}
	var window time.Duration
	if v := ctx.QueryArgs().Peek("window"); len(v) > 0 {
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 || d > maxDrainWindow {
			s.fail(ctx, fasthttp.StatusBadRequest, "window must be a duration between 0 and 1h, e.g. 30s", nil)
			return
		}
		window = d
	}
	if err := s.admin.Drain(cctx, nodeID, window); err != nil {
		status := fasthttp.StatusBadGateway
		if errors.Is(err, ErrUnknownNode) {
			status = fasthttp.StatusNotFound
		}
		s.fail(ctx, status, "drain failed: "+err.Error(), err)
		return
	}
	s.log.Info("dispatch: admin drain", "node", nodeID, "window", window)
	b := appendOKPrefix(make([]byte, 0, 96))
	b = append(b, `{"nodeId":`...)
	b = codec.AppendString(b, nodeID)
	b = append(b, `,"draining":true}}`...)
	s.write(ctx, fasthttp.StatusOK, b)
}
