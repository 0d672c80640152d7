package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"imgate/server"
)

func TestAuthClosesWith4401(t *testing.T) {
	auth, err := server.NewHMACAuth("0123456789abcdef-secret")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := server.NewHMACAuth("another-secret-of-16+")
	n := startNode(t, server.Config{Auth: auth}, nil)
	cases := []struct {
		name  string
		user  string
		token string
		ok    bool
	}{
		{"valid", "alice", auth.Token("alice", time.Minute), true},
		{"missing", "alice", "", false},
		{"other user's token", "mallory", auth.Token("alice", time.Minute), false},
		{"expired", "alice", auth.Token("alice", -time.Second), false},
		{"wrong secret", "alice", other.Token("alice", time.Minute), false},
		{"garbage", "alice", "not.a.jwt", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, n.addr)
			init := map[string]any{"chatMsg": map[string]any{"senderId": tc.user, "msgType": 0}}
			if tc.token != "" {
				init["token"] = tc.token
			}
			c.sendJSON(init)
			if !tc.ok {
				c.expectClose(4401)
				return
			}
			c.expectType(11)
		})
	}
}

func TestAuthSubject(t *testing.T) {
	auth, err := server.NewHMACAuth("0123456789abcdef-secret")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := server.NewHMACAuth("another-secret-of-16+")
	cases := []struct {
		name    string
		token   string
		wantSub string
		wantErr error
	}{
		{"valid", auth.Token("alice", time.Minute), "alice", nil},
		{"missing", "", "", server.ErrTokenMissing},
		{"expired keeps its subject", auth.Token("alice", -time.Second), "alice", server.ErrTokenExpired},
		{"wrong secret", other.Token("alice", time.Minute), "", server.ErrTokenInvalid},
		{"empty subject", auth.Token("", time.Minute), "", server.ErrTokenInvalid},
		{"garbage", "not.a.jwt", "", server.ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := auth.Subject(tc.token)
			if sub != tc.wantSub || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Subject = %q, %v; want %q, %v", sub, err, tc.wantSub, tc.wantErr)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	n := startNode(t, server.Config{RateLimit: 1, RateBurst: 3}, nil)
	a, _ := login(t, n.addr, "rl-a", -1)
	// The burst passes; the next messages are refused with rate_limited, and a client
	// that keeps sending while limited is closed with 4429.
	for i := range 3 {
		a.send("rl-a", "rl-b", "m", "ok-"+string(rune('0'+i)))
		a.expectType(11)
	}
	for i := range 5 {
		a.send("rl-a", "rl-b", "m", "over-"+string(rune('0'+i)))
	}
	limited := 0
	for {
		f, err := a.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("no 4429 close after %d rate_limited errors: %v", limited, err)
		}
		if f.op == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.payload); code != 4429 {
				t.Fatalf("close code %d, want 4429", code)
			}
			break
		}
		var e envelope
		if err := json.Unmarshal(f.payload, &e); err != nil || e.Error == nil || e.Error.Code != "rate_limited" || e.str("clientMsgId") == "" {
			t.Fatalf("want ERROR rate_limited, got %s", f.payload)
		}
		limited++
	}
	if limited == 0 {
		t.Fatal("closed without a rate_limited ERROR first")
	}
	// KEEPALIVE and pings are not limited.
	b, _ := login(t, n.addr, "rl-b", -1)
	for range 10 {
		b.sendJSON(map[string]any{"chatMsg": map[string]any{"msgType": 9}})
		b.expectType(9)
	}
}

// TestRateLimitZeroIsOff: RateLimit 0 in the Config means no limit, as --rate-limit 0
// does: a burst of one does not hold back a connection that sends many at once.
func TestRateLimitZeroIsOff(t *testing.T) {
	n := startNode(t, server.Config{RateBurst: 1}, nil)
	a, _ := login(t, n.addr, "rl0-a", -1)
	const sent = 50
	for i := range sent {
		a.send("rl0-a", "rl0-b", "m", "m-"+strconv.Itoa(i))
	}
	for range sent {
		a.expectType(11)
	}
}

// signHS256 returns a JWT of claims (raw JSON) signed with secret, so a test can send
// claims that HMACAuth.Token would never write.
func signHS256(secret, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(head))
	return head + "." + enc(m.Sum(nil))
}

// TestAuthClaimsExactAndBounded: claim names match exactly, exp is required and a
// token may not outlive the maximum lifetime (issue 10 item 10).
func TestAuthClaimsExactAndBounded(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	inHour := strconv.FormatInt(now+3600, 10)
	cases := []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"normal", signHS256(secret, `{"sub":"alice","exp":`+inHour+`}`), true},
		{"normal with iat", signHS256(secret, `{"sub":"alice","exp":`+inHour+`,"iat":`+strconv.FormatInt(now, 10)+`}`), true},
		{"imgate token default ttl", auth.Token("alice", server.DefaultMaxTokenLifetime), true},
		{"SUB upper case", signHS256(secret, `{"SUB":"alice","exp":`+inHour+`}`), false},
		{"Exp mixed case", signHS256(secret, `{"sub":"alice","Exp":`+inHour+`}`), false},
		{"missing exp", signHS256(secret, `{"sub":"alice"}`), false},
		{"exp not a number", signHS256(secret, `{"sub":"alice","exp":"`+inHour+`"}`), false},
		{"exp 2^62", signHS256(secret, `{"sub":"alice","exp":4611686018427387904}`), false},
		{"exp 25h ahead", signHS256(secret, `{"sub":"alice","exp":`+strconv.FormatInt(now+25*3600, 10)+`}`), false},
		{"exp - iat over 24h", signHS256(secret, `{"sub":"alice","exp":`+inHour+`,"iat":`+strconv.FormatInt(now-24*3600, 10)+`}`), false},
		{"iat after exp", signHS256(secret, `{"sub":"alice","exp":`+inHour+`,"iat":`+strconv.FormatInt(now+7200, 10)+`}`), false},
		{"longer than the maximum", auth.Token("alice", 48*time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := auth.Subject(tc.token)
			if tc.wantOK != (err == nil) || (tc.wantOK && sub != "alice") {
				t.Fatalf("Subject = %q, %v; want ok %v", sub, err, tc.wantOK)
			}
		})
	}
	week, err := server.NewHMACAuth(secret, server.WithMaxTokenLifetime(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := week.Subject(auth.Token("alice", 48*time.Hour)); err != nil {
		t.Fatalf("a 48h token under a 7-day maximum: %v", err)
	}
	if _, err := server.NewHMACAuth(secret, server.WithMaxTokenLifetime(-time.Second)); err == nil {
		t.Fatal("a negative maximum lifetime was accepted")
	}
}
