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
// and "exp" (Unix seconds, required).
type HMACAuth struct {
	secret []byte
	now    func() time.Time
}

// NewHMACAuth returns an authenticator for tokens signed with secret (at least 16 bytes).
func NewHMACAuth(secret string) (*HMACAuth, error) {
	if len(secret) < 16 {
		return nil, errors.New("server: auth secret must be at least 16 bytes")
	}
	return &HMACAuth{secret: []byte(secret), now: time.Now}, nil
}

type jwtClaims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
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
	var h struct {
		Alg string `json:"alg"`
	}
	if hb, err := base64.RawURLEncoding.DecodeString(head); err != nil || json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
		return "", ErrTokenInvalid
	}
	var c jwtClaims
	if pb, err := base64.RawURLEncoding.DecodeString(payload); err != nil || json.Unmarshal(pb, &c) != nil {
		return "", ErrTokenInvalid
	}
	if c.Sub == "" || c.Exp == 0 {
		return "", ErrTokenInvalid
	}
	if a.now().Unix() >= c.Exp {
		return c.Sub, ErrTokenExpired
	}
	return c.Sub, nil
}

// Token returns a token for userID valid for ttl (for tools and tests).
func (a *HMACAuth) Token(userID string, ttl time.Duration) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(jwtClaims{Sub: userID, Exp: a.now().Add(ttl).Unix()})
	payload := base64.RawURLEncoding.EncodeToString(claims)
	return head + "." + payload + "." + base64.RawURLEncoding.EncodeToString(a.sign(head+"."+payload))
}

func (a *HMACAuth) sign(s string) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(s))
	return m.Sum(nil)
}
