package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Authenticator checks the token of a CONNECT_INIT. It runs on event loops: it must not
// block (no I/O). A nil Authenticator accepts every user (auth off).
type Authenticator interface {
	// Verify returns nil when token proves that its bearer is userID.
	Verify(userID, token string) error
}

// Errors of HMACAuth.Verify.
var (
	ErrTokenMissing = errors.New("server: token missing")
	ErrTokenInvalid = errors.New("server: token invalid")
	ErrTokenExpired = errors.New("server: token expired")
)

// HMACAuth verifies JSON Web Tokens signed with HS256 (HMAC-SHA256) under one shared
// secret: the header must say {"alg":"HS256"}, the claims must carry "sub" (the user)
// and "exp" (Unix seconds, required), and may carry "iat" (Unix seconds). Member names
// match exactly: "SUB" or "Exp" are not the claims (encoding/json would match them
// case-insensitively). A token may not live longer than the maximum lifetime: exp - now
// (allowing TokenClockSkew) and, with iat, exp - iat must not exceed it.
type HMACAuth struct {
	secret      []byte
	maxLifetime time.Duration
	now         func() time.Time
}

// DefaultMaxTokenLifetime is the longest token lifetime HMACAuth accepts by default:
// the lifetime `imgate token` issues by default (--ttl 24h).
const DefaultMaxTokenLifetime = 24 * time.Hour

// TokenClockSkew is how far the issuer's clock may run ahead of the verifier's when
// exp - now is checked against the maximum lifetime (a fresh 24 h token from a machine
// whose clock is a few seconds ahead is still accepted under a 24 h maximum).
const TokenClockSkew = time.Minute

// HMACOption configures NewHMACAuth.
type HMACOption func(*HMACAuth)

// WithMaxTokenLifetime sets the longest lifetime of an accepted token (0: the default,
// DefaultMaxTokenLifetime).
func WithMaxTokenLifetime(d time.Duration) HMACOption {
	return func(a *HMACAuth) { a.maxLifetime = d }
}

// NewHMACAuth returns an authenticator for tokens signed with secret (at least 16 bytes).
func NewHMACAuth(secret string, opts ...HMACOption) (*HMACAuth, error) {
	if len(secret) < 16 {
		return nil, errors.New("server: auth secret must be at least 16 bytes")
	}
	a := &HMACAuth{secret: []byte(secret), now: time.Now}
	for _, o := range opts {
		o(a)
	}
	if a.maxLifetime < 0 {
		return nil, errors.New("server: max token lifetime must not be negative (0: the default)")
	}
	if a.maxLifetime == 0 {
		a.maxLifetime = DefaultMaxTokenLifetime
	}
	return a, nil
}

// MaxLifetime returns the longest lifetime of an accepted token.
func (a *HMACAuth) MaxLifetime() time.Duration { return a.maxLifetime }

type jwtClaims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
	Iat int64  `json:"iat"`
	// hasIat reports that the token carried "iat" (not encoded).
	hasIat bool
}

// exactMembers decodes the base64url JSON object b into its members by their exact
// names (a map, unlike a struct, does not match names case-insensitively).
func exactMembers(b64 string) (map[string]json.RawMessage, bool) {
	b, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// member decodes the member name of m into v; present reports whether it was there.
func member(m map[string]json.RawMessage, name string, v any) (present, ok bool) {
	raw, present := m[name]
	if !present {
		return false, true
	}
	return true, json.Unmarshal(raw, v) == nil
}

// parseClaims returns the claims of a verified payload: "sub" a non-empty string, "exp"
// an integer (required), "iat" an integer (optional, 0 when absent).
func parseClaims(payload string) (jwtClaims, bool) {
	var c jwtClaims
	m, ok := exactMembers(payload)
	if !ok {
		return c, false
	}
	subIn, subOK := member(m, "sub", &c.Sub)
	expIn, expOK := member(m, "exp", &c.Exp)
	iatIn, iatOK := member(m, "iat", &c.Iat)
	c.hasIat = iatIn
	return c, subIn && subOK && expIn && expOK && iatOK && c.Sub != ""
}

// Verify implements Authenticator.
func (a *HMACAuth) Verify(userID, token string) error {
	sub, err := a.Subject(token)
	if err != nil && !errors.Is(err, ErrTokenExpired) {
		return err
	}
	if sub != userID {
		return ErrTokenInvalid
	}
	return err
}

// Subject checks token (signature, algorithm, a "sub" and an "exp" in the future) and
// returns the user it proves. An expired token returns its subject with
// ErrTokenExpired. The dispatcher's HTTP routes use it to tell a bad token (401) from
// a good token of another user (403).
func (a *HMACAuth) Subject(token string) (string, error) {
	if token == "" {
		return "", ErrTokenMissing
	}
	head, rest, ok := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", ErrTokenInvalid
	}
	want := a.sign(head + "." + payload)
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want) {
		return "", ErrTokenInvalid
	}
	var alg string
	if h, ok := exactMembers(head); !ok {
		return "", ErrTokenInvalid
	} else if in, ok := member(h, "alg", &alg); !in || !ok || alg != "HS256" {
		return "", ErrTokenInvalid
	}
	c, ok := parseClaims(payload)
	if !ok {
		return "", ErrTokenInvalid
	}
	now := a.now().Unix()
	if now >= c.Exp {
		return c.Sub, ErrTokenExpired
	}
	// now < exp, so exp - now does not overflow; 0 <= iat <= exp keeps exp - iat in range.
	maxSec := int64(a.maxLifetime / time.Second)
	if c.Exp-now > maxSec+int64(TokenClockSkew/time.Second) {
		return "", ErrTokenInvalid
	}
	if c.hasIat && (c.Iat < 0 || c.Iat > c.Exp || c.Exp-c.Iat > maxSec) {
		return "", ErrTokenInvalid
	}
	return c.Sub, nil
}

// Token returns a token for userID valid for ttl (for tools and tests).
func (a *HMACAuth) Token(userID string, ttl time.Duration) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	now := a.now()
	claims, _ := json.Marshal(jwtClaims{Sub: userID, Exp: now.Add(ttl).Unix(), Iat: now.Unix()})
	payload := base64.RawURLEncoding.EncodeToString(claims)
	return head + "." + payload + "." + base64.RawURLEncoding.EncodeToString(a.sign(head+"."+payload))
}

func (a *HMACAuth) sign(s string) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(s))
	return m.Sum(nil)
}
