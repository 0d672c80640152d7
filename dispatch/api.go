package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"imgate/codec"
	"imgate/message"
)

// Routes of the server API (PROTOCOL §8), besides POST on routeMessages.
const (
	routeGroups    = "/api/v1/groups/" // + {groupId}, + {groupId}/members
	routeBroadcast = "/api/v1/broadcast"
)

// DefaultMaxGroupMembers is the member limit of a group when Config.MaxGroupMembers is 0.
const DefaultMaxGroupMembers = 5000

// Groups is the membership store behind the group routes and group history;
// saver.Store satisfies it. Errors wrapping message.ErrUnknownGroup answer 404,
// message.ErrGroupFull and message.ErrInvalid 400, any other 503.
type Groups interface {
	PutGroup(ctx context.Context, groupID string, members []string) ([]string, error)
	Group(ctx context.Context, groupID string) ([]string, error)
	UpdateGroup(ctx context.Context, groupID string, add, remove []string, maxMembers int) ([]string, error)
	DeleteGroup(ctx context.Context, groupID string) error
	// GroupHistory is History for the messages of one group in userID's inbox.
	GroupHistory(ctx context.Context, userID, groupID string, beforeSeq int64, limit int) ([]message.Entry, error)
}

// GroupCaches are the nodes' caches of group membership as the group routes see them.
type GroupCaches interface {
	// Invalidate returns once every node has dropped groupID from its cache, or with
	// an error naming those that had not when ctx ended (they drop it when they read
	// their queue again, or let it expire).
	Invalidate(ctx context.Context, groupID string) error
}

// handleGroup serves PUT, GET, DELETE /api/v1/groups/{groupId} and POST
// /api/v1/groups/{groupId}/members; rest is the path after routeGroups.
func (s *Server) handleGroup(ctx *fasthttp.RequestCtx, rest string) {
	id, members := strings.CutSuffix(rest, "/members")
	method := string(ctx.Method())
	allowed := []string{fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPut, fasthttp.MethodDelete}
	if members {
		allowed = []string{fasthttp.MethodPost}
	}
	if !slices.Contains(allowed, method) {
		ctx.Response.Header.Set("Allow", strings.Join(allowed, ", "))
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, msgMethod, nil)
		return
	}
	if !s.authorizeAPI(ctx) {
		return
	}
	if !message.ValidID(id) || strings.Contains(id, "/") {
		s.fail(ctx, fasthttp.StatusBadRequest, "groupId must be 1 to 128 bytes of UTF-8 without NUL or '/'", nil)
		return
	}
	if s.groups == nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "groups not available: no message store", nil)
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.BackendTimeout)
	defer cancel()
	var list []string
	var err error
	switch {
	case members:
		var body struct{ Add, Remove []string }
		if !s.decodeBody(ctx, &body) || !s.checkIDs(ctx, "add", body.Add) || !s.checkIDs(ctx, "remove", body.Remove) {
			return
		}
		list, err = s.groups.UpdateGroup(cctx, id, body.Add, body.Remove, s.cfg.MaxGroupMembers)
	case method == fasthttp.MethodPut:
		var body struct{ Members *[]string }
		if !s.decodeBody(ctx, &body) {
			return
		}
		if body.Members == nil {
			s.fail(ctx, fasthttp.StatusBadRequest, "members is required (an array of user ids)", nil)
			return
		}
		if !s.checkIDs(ctx, "members", *body.Members) {
			return
		}
		if n := distinct(*body.Members); n > s.cfg.MaxGroupMembers {
			s.fail(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("a group has at most %d members, not %d", s.cfg.MaxGroupMembers, n), nil)
			return
		}
		list, err = s.groups.PutGroup(cctx, id, *body.Members)
	case method == fasthttp.MethodDelete:
		err = s.groups.DeleteGroup(cctx, id)
	default:
		list, err = s.groups.Group(cctx, id)
	}
	// A change that may have been stored (no error, or one that leaves it unknown, such
	// as a timeout around the commit) is announced; a refused one changed nothing.
	refused := errors.Is(err, message.ErrUnknownGroup) || errors.Is(err, message.ErrGroupFull) || errors.Is(err, message.ErrInvalid)
	if !refused && method != fasthttp.MethodGet && method != fasthttp.MethodHead {
		s.invalidateGroup(id)
	}
	switch {
	case errors.Is(err, message.ErrUnknownGroup):
		s.fail(ctx, fasthttp.StatusNotFound, "unknown group", nil)
	case errors.Is(err, message.ErrGroupFull):
		s.fail(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("a group has at most %d members", s.cfg.MaxGroupMembers), nil)
	case errors.Is(err, message.ErrInvalid):
		s.fail(ctx, fasthttp.StatusBadRequest, "invalid group or member id", nil)
	case err != nil:
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "groups unavailable", fmt.Errorf("dispatch: group %q: %w", id, err))
	case method == fasthttp.MethodDelete:
		s.write(ctx, fasthttp.StatusOK, append(appendOKPrefix(nil), "null}"...))
	default:
		b := appendOKPrefix(make([]byte, 0, 64+24*len(list)))
		b = codec.AppendString(append(b, `{"groupId":`...), id)
		b = append(b, `,"members":[`...)
		for i, u := range list {
			if i > 0 {
				b = append(b, ',')
			}
			b = codec.AppendString(b, u)
		}
		s.write(ctx, fasthttp.StatusOK, append(b, "]}}"...))
	}
}

// invalidateGroup makes every node drop groupID from its membership cache after a
// stored change, so the change applies to the next message on every node. A node that
// does not confirm within BackendTimeout is logged; the change stands (it is stored,
// and the saver checks membership again in every save). The wait has its own
// BackendTimeout, not what the store call left of one: a change that may be stored must
// be announced even when the store was slow, so a change route answers within twice it.
func (s *Server) invalidateGroup(id string) {
	if s.caches == nil {
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.BackendTimeout)
	defer cancel()
	if err := s.caches.Invalidate(cctx, id); err != nil {
		s.log.Warn("dispatch: group changed, but not every node confirmed dropping it from its cache", "groupId", id, "err", err)
	}
}

// decodeBody reads the request's JSON object into v; 400 and false when it is not one.
func (s *Server) decodeBody(ctx *fasthttp.RequestCtx, v any) bool {
	if err := json.Unmarshal(ctx.PostBody(), v); err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "body must be a JSON object: "+err.Error(), nil)
		return false
	}
	return true
}

// checkIDs answers 400 and returns false when an id of the list named field is not a
// valid user id.
func (s *Server) checkIDs(ctx *fasthttp.RequestCtx, field string, ids []string) bool {
	for _, u := range ids {
		if !message.ValidID(u) {
			s.fail(ctx, fasthttp.StatusBadRequest, field+": user ids are 1 to 128 bytes of UTF-8 without NUL", nil)
			return false
		}
	}
	return true
}

// distinct counts the distinct ids.
func distinct(ids []string) int {
	seen := make(map[string]struct{}, len(ids))
	for _, u := range ids {
		seen[u] = struct{}{}
	}
	return len(seen)
}

// apiMessage reads the chatMsg object of POST /api/v1/messages and /api/v1/broadcast
// with the WebSocket's decoder (the same fields, bounds and unknown members), and checks
// what every message needs: a content msgType, a valid senderId, msg. It answers 400
// and returns false otherwise.
func (s *Server) apiMessage(ctx *fasthttp.RequestCtx) (*codec.ChatMsg, bool) {
	body := ctx.PostBody()
	wrapped := make([]byte, 0, len(body)+12)
	wrapped = append(append(append(wrapped, `{"chatMsg":`...), body...), '}')
	env, err := codec.DecodeEnvelope(wrapped)
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "body must be a chatMsg object: "+err.Error(), nil)
		return nil, false
	}
	m := env.ChatMsg
	switch {
	case !m.MsgType.IsContent():
		s.fail(ctx, fasthttp.StatusBadRequest, "msgType must be 1 (WORDS), 2 (IMAGE), 3 (VOICE) or 4 (VIDEO)", nil)
	case !message.ValidID(m.SenderID):
		s.fail(ctx, fasthttp.StatusBadRequest, "senderId is required (1 to 128 bytes of UTF-8 without NUL)", nil)
	case m.Msg == "":
		s.fail(ctx, fasthttp.StatusBadRequest, "msg is required", nil)
	default:
		m.MsgID = s.ids.Next()
		m.ChatTime = time.UnixMilli(time.Now().UnixMilli()).UTC()
		m.Seq = 0
		return m, true
	}
	return nil, false
}

// handleSend serves POST /api/v1/messages: the message is persisted, seq'd and
// delivered like a client's, and answered once persisted.
func (s *Server) handleSend(ctx *fasthttp.RequestCtx) {
	if !s.authorizeAPI(ctx) {
		return
	}
	m, ok := s.apiMessage(ctx)
	if !ok {
		return
	}
	switch {
	case (m.ReceiverID == "") == (m.GroupID == ""):
		s.fail(ctx, fasthttp.StatusBadRequest, "exactly one of receiverId and groupId is required", nil)
		return
	case m.ReceiverID != "" && !message.ValidID(m.ReceiverID), m.GroupID != "" && !message.ValidID(m.GroupID):
		s.fail(ctx, fasthttp.StatusBadRequest, "receiverId and groupId are 1 to 128 bytes of UTF-8 without NUL", nil)
		return
	}
	if s.outbox == nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "sending not available: no message store", nil)
		return
	}
	rec := message.Record{Msg: *m, Node: s.results.Node(), Server: true}
	if err := rec.Validate(); err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "message refused: fields must be UTF-8 text without NUL", nil)
		return
	}
	cctx, cancel := context.WithTimeout(s.base, s.cfg.SendTimeout)
	saved, err := s.results.send(cctx, s.outbox, rec)
	cancel()
	switch {
	case err != nil:
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "message not persisted, retry later with the same clientMsgId",
			fmt.Errorf("dispatch: send: %w", err))
	case saved.Forbidden:
		s.fail(ctx, fasthttp.StatusNotFound, "unknown group", nil)
	default:
		b := appendOKPrefix(make([]byte, 0, 128))
		b = strconv.AppendInt(append(b, `{"msgId":"`...), saved.Msg.MsgID, 10)
		b = append(b, `","chatTime":"`...)
		b = saved.Msg.ChatTime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		s.write(ctx, fasthttp.StatusOK, append(b, `"}}`...))
	}
}

// handleBroadcast serves POST /api/v1/broadcast: a live-only message to every
// connected device, not stored.
func (s *Server) handleBroadcast(ctx *fasthttp.RequestCtx) {
	if !s.authorizeAPI(ctx) {
		return
	}
	m, ok := s.apiMessage(ctx)
	if !ok {
		return
	}
	if m.ReceiverID != "" || m.GroupID != "" {
		s.fail(ctx, fasthttp.StatusBadRequest, "a broadcast has no receiverId or groupId", nil)
		return
	}
	if s.relay == nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "broadcast not available", nil)
		return
	}
	rec := message.Record{Msg: *m, Node: s.results.Node(), Server: true, Broadcast: true}
	if err := rec.Validate(); err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "message refused: fields must be UTF-8 text without NUL", nil)
		return
	}
	if err := s.relay.Relay(rec); err != nil {
		s.fail(ctx, fasthttp.StatusServiceUnavailable, "broadcast not accepted, retry later", fmt.Errorf("dispatch: broadcast: %w", err))
		return
	}
	b := appendOKPrefix(make([]byte, 0, 96))
	b = strconv.AppendInt(append(b, `{"msgId":"`...), m.MsgID, 10)
	s.write(ctx, fasthttp.StatusOK, append(b, `"}}`...))
}
