package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"imgate/codec"
	"imgate/message"

	"github.com/valyala/fasthttp"
)

// TokenIssuer signs user tokens for POST /api/v1/dev/login: the signer of the nodes'
// tokens (*server.HMACAuth satisfies it), so a dev-login token opens the WebSocket and
// reads its user's history like one from an application's backend.
type TokenIssuer interface {
	// Token returns a token proving userID, valid for ttl.
	Token(userID string, ttl time.Duration) string
}

// DefaultDevLoginTTL is the lifetime of the tokens POST /api/v1/dev/login issues.
const DefaultDevLoginTTL = 12 * time.Hour

// validateDevLogin checks the conditions under which Config.DevLogin may be on: tokens
// the nodes verify (Auth), and a listener only this machine reaches. Dev login hands
// any user's token to whoever asks, so it must not be on by accident, nor reachable
// from the network.
func (c Config) validateDevLogin() error {
	if c.DevLogin == nil {
		if c.DevLoginTTL != 0 {
			return errors.New("dispatch: DevLoginTTL without DevLogin")
		}
		return nil
	}
	if c.Auth == nil {
		return errors.New("dispatch: DevLogin needs Auth: the tokens it issues must be the ones the nodes verify")
	}
	if c.DevLoginTTL < 0 {
		return fmt.Errorf("dispatch: negative DevLoginTTL %v", c.DevLoginTTL)
	}
	host, _, _ := net.SplitHostPort(c.Addr)
	if c.Addr != "" && host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("dispatch: DevLogin needs a loopback Addr (127.0.0.1, [::1], localhost), not %q: "+
				"it gives anyone who reaches the address a token for any user", c.Addr)
		}
	}
	return nil
}

// handleDevLogin answers POST /api/v1/dev/login (only with Config.DevLogin): the body
// {"userId":"U"} (or the form userId=U) gets data = {"userId":U,"token":T,"expiresAt":unix}.
// A browser request whose Origin is not this server's own page is refused with 403.
func (s *Server) handleDevLogin(ctx *fasthttp.RequestCtx) {
	if origin := ctx.Request.Header.Peek("Origin"); len(origin) > 0 && !sameOrigin(origin, ctx.Host()) {
		s.fail(ctx, fasthttp.StatusForbidden, "dev login only from this server's own page", nil)
		return
	}
	userID, ok := devLoginUser(ctx)
	if !ok {
		s.fail(ctx, fasthttp.StatusBadRequest, "userId is required: 1 to 128 bytes of printable UTF-8", nil)
		return
	}
	ttl := s.cfg.DevLoginTTL
	token := s.devLogin.Token(userID, ttl)
	s.log.Info("dispatch: dev login issued a token", "user", userID, "remote", ctx.RemoteAddr().String(), "ttl", ttl)
	b := appendOKPrefix(make([]byte, 0, 128+len(token)))
	b = append(b, `{"userId":`...)
	b = codec.AppendString(b, userID)
	b = append(b, `,"token":`...)
	b = codec.AppendString(b, token)
	b = append(b, `,"expiresAt":`...)
	b = strconv.AppendInt(b, time.Now().Add(ttl).Unix(), 10)
	b = append(b, "}}"...)
	s.write(ctx, fasthttp.StatusOK, b)
}

// devLoginUser reads the user id of a dev-login request from a JSON or urlencoded body.
func devLoginUser(ctx *fasthttp.RequestCtx) (string, bool) {
	var userID string
	if bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/json")) {
		var req struct {
			UserID string `json:"userId"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
			return "", false
		}
		userID = req.UserID
	} else {
		userID = string(ctx.PostArgs().Peek("userId"))
	}
	if userID == "" || len(userID) > message.MaxUserID || !utf8.ValidString(userID) {
		return "", false
	}
	for _, r := range userID {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return userID, true
}

// sameOrigin reports whether the Origin header names the server reached through host
// (the Host header): the dispatcher's own page.
func sameOrigin(origin, host []byte) bool {
	u, err := url.Parse(string(origin))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && normalizeHost(u.Host) == normalizeHost(string(host))
}
