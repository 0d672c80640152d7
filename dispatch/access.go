package dispatch

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// TokenVerifier checks a user token of the history and presence routes: the same
// verifier as the nodes' CONNECT_INIT (*server.HMACAuth satisfies it), so one secret
// signs both. It must not block.
type TokenVerifier interface {
	// Subject returns the user token proves, or an error when the token is missing,
	// invalid or expired.
	Subject(token string) (string, error)
}

// Answer texts of the access checks.
const (
	msgAuthRequired = "authorization required: send Authorization: Bearer <user token or API key>"
	msgAuthInvalid  = "invalid or expired token"
	msgForbidden    = "token is not for this user"
	msgBadHost      = "host not allowed: not one of this server's names"

	msgAPIUnauthenticated = "authorization required: send Authorization: Bearer <API key> (server started with --api-key)"
	msgAPIRefused         = "invalid API key"
)

// Values of WWW-Authenticate on 401 (RFC 6750 §3).
const (
	challengeMissing = `Bearer realm="imgate"`
	challengeInvalid = `Bearer realm="imgate", error="invalid_token"`
)

// principal is who an authenticated request speaks for.
type principal struct {
	open bool   // access control is off (no Auth, no APIKey): anyone
	key  bool   // the server API key: any user
	sub  string // a user token's subject: that user only
}

// accessControl is the per-Server state of the checks, fixed by New.
type accessControl struct {
	auth    TokenVerifier
	keyHash [sha256.Size]byte // SHA-256 of Config.APIKey: compared in constant time
	hasKey  bool
	// anyHost accepts every Host: the listen address is unspecified and no
	// AllowedHosts are configured.
	anyHost bool
	hosts   map[string]bool // lower-case names without port
}

func newAccessControl(cfg Config) accessControl {
	a := accessControl{auth: cfg.Auth, hosts: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}}
	if cfg.APIKey != "" {
		a.keyHash, a.hasKey = sha256.Sum256([]byte(cfg.APIKey)), true
	}
	host, _, _ := net.SplitHostPort(cfg.Addr) // validated by Config.Validate
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		a.anyHost = len(cfg.AllowedHosts) == 0
	} else {
		a.hosts[normalizeHost(host)] = true
	}
	for _, h := range cfg.AllowedHosts {
		a.hosts[normalizeHost(h)] = true
	}
	return a
}

// open reports whether the history and presence routes are served without credentials.
func (a *accessControl) open() bool { return a.auth == nil && !a.hasKey }

// hostAllowed reports whether the request's Host header (port stripped) names this
// server. A page of another site that rebinds its DNS name to this address still sends
// its own name as Host, so it is refused.
func (a *accessControl) hostAllowed(host []byte) bool {
	if a.anyHost {
		return true
	}
	return a.hosts[normalizeHost(hostWithoutPort(string(host)))]
}

// hostWithoutPort strips the port of a Host header value: "[::1]:80" → "::1",
// "example.com:80" → "example.com".
func hostWithoutPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

// normalizeHost lowers a host name and drops brackets and a final dot, so that
// "LOCALHOST.", "[::1]" and "::1" compare as configured.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// validateAllowedHosts checks Config.AllowedHosts: names or IPs, without port or path.
func validateAllowedHosts(hosts []string) error {
	for _, h := range hosts {
		n := normalizeHost(h)
		if n == "" || strings.ContainsAny(n, "/ \t@?#") || (strings.Contains(n, ":") && net.ParseIP(n) == nil) {
			return fmt.Errorf("dispatch: invalid AllowedHosts entry %q: want a host name or IP without port", h)
		}
	}
	return nil
}

// authenticate reads the request's bearer credential. It answers 401 with
// WWW-Authenticate and returns false when access control is on and the credential is
// missing or neither the API key nor a valid user token.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (principal, bool) {
	if s.access.open() {
		return principal{open: true}, true
	}
	token, ok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if !ok {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, challengeMissing)
		s.fail(ctx, fasthttp.StatusUnauthorized, msgAuthRequired, nil)
		return principal{}, false
	}
	if s.access.isAPIKey(token) {
		return principal{key: true}, true
	}
	if s.access.auth != nil {
		if sub, err := s.access.auth.Subject(string(token)); err == nil {
			return principal{sub: sub}, true
		}
	}
	ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, challengeInvalid)
	s.fail(ctx, fasthttp.StatusUnauthorized, msgAuthInvalid, nil)
	return principal{}, false
}

// isAPIKey reports whether token is the server API key (compared in constant time).
func (a *accessControl) isAPIKey(token []byte) bool {
	if !a.hasKey {
		return false
	}
	h := sha256.Sum256(token)
	return subtle.ConstantTimeCompare(h[:], a.keyHash[:]) == 1
}

// authorizeAPI admits a request of the server API (PROTOCOL §8): only the API key, as
// a bearer credential. Without it, with another credential (a user token included) or
// with no key configured (the server API is then closed), it answers 401 and returns
// false.
func (s *Server) authorizeAPI(ctx *fasthttp.RequestCtx) bool {
	token, ok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	switch {
	case !ok:
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, challengeMissing)
		s.fail(ctx, fasthttp.StatusUnauthorized, msgAPIUnauthenticated, nil)
		return false
	case !s.access.isAPIKey(token):
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, challengeInvalid)
		s.fail(ctx, fasthttp.StatusUnauthorized, msgAPIRefused, nil)
		return false
	}
	return true
}

// permit answers 403 and returns false when p may not read userID's data: a user
// token reads only its own subject's.
func (s *Server) permit(ctx *fasthttp.RequestCtx, p principal, userID string) bool {
	if p.open || p.key || p.sub == userID {
		return true
	}
	s.fail(ctx, fasthttp.StatusForbidden, msgForbidden, nil)
	return false
}

// bearer returns the credential of an "Authorization: Bearer <x>" value (the scheme is
// case-insensitive, RFC 7235 §2.1); false when there is none.
func bearer(v []byte) ([]byte, bool) {
	const scheme = "bearer "
	v = bytes.TrimSpace(v)
	if len(v) <= len(scheme) || !bytes.EqualFold(v[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	token := bytes.TrimSpace(v[len(scheme):])
	return token, len(token) > 0
}
