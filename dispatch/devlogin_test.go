package dispatch

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeIssuer signs "tok-<user>", the tokens fakeVerifier accepts.
type fakeIssuer struct{}

func (fakeIssuer) Token(userID string, _ time.Duration) string { return "tok-" + userID }

func (ts *testServer) post(t *testing.T, path, contentType, body, origin string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", ts.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, env
}

// TestDevLogin: the route is off (404) unless Config.DevLogin is set; on, it issues a
// token the history route accepts, and refuses bad user ids and other sites' pages.
func TestDevLogin(t *testing.T) {
	off := startServer(t, Config{Auth: fakeVerifier{}}, Deps{Nodes: StaticView{}})
	if status, _ := off.post(t, routeDevLogin, "application/json", `{"userId":"alice"}`, ""); status != 404 {
		t.Fatalf("dev login without DevLogin: status %d, want 404", status)
	}

	ts := startServer(t, Config{Auth: fakeVerifier{}, DevLogin: fakeIssuer{}},
		Deps{Nodes: StaticView{}, History: &fakeHistory{inbox: inbox(3)}})
	status, env := ts.post(t, routeDevLogin, "application/json", `{"userId":"alice"}`, "")
	data, _ := env["data"].(map[string]any)
	if status != 200 || data["token"] != "tok-alice" || data["userId"] != "alice" {
		t.Fatalf("dev login: %d %v", status, env)
	}
	if exp, _ := data["expiresAt"].(float64); int64(exp) < time.Now().Add(DefaultDevLoginTTL-time.Minute).Unix() {
		t.Fatalf("expiresAt %v, want about now + %v", data["expiresAt"], DefaultDevLoginTTL)
	}
	if r := ts.get(t, "/api/v1/messages?userId=alice", "", "Bearer tok-alice"); r.status != 200 {
		t.Fatalf("history with the dev-login token: %d %s", r.status, r.body)
	}
	if status, env := ts.post(t, routeDevLogin, "application/x-www-form-urlencoded", "userId=bob", ts.base); status != 200 ||
		env["data"].(map[string]any)["token"] != "tok-bob" {
		t.Fatalf("form dev login from the own page: %d %v", status, env)
	}
	for name, body := range map[string]string{
		"empty":        `{"userId":""}`,
		"missing":      `{}`,
		"not json":     `userId=alice`,
		"too long":     `{"userId":"` + strings.Repeat("u", 129) + `"}`,
		"control char": `{"userId":"a\u0007b"}`,
	} {
		if status, _ := ts.post(t, routeDevLogin, "application/json", body, ""); status != 400 {
			t.Errorf("%s: status %d, want 400", name, status)
		}
	}
	if status, _ := ts.post(t, routeDevLogin, "application/json", `{"userId":"alice"}`, "http://evil.example"); status != 403 {
		t.Fatalf("dev login from another site's page: status %d, want 403", status)
	}
	if r := ts.get(t, routeDevLogin, "", ""); r.status != 405 {
		t.Fatalf("GET dev login: %d, want 405", r.status)
	}
}

// TestDevLoginConfig: dev login cannot be configured without token verification or on
// an address other machines reach.
func TestDevLoginConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"loopback with auth", Config{Addr: "127.0.0.1:0", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, true},
		{"localhost", Config{Addr: "localhost:8080", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, true},
		{"ipv6 loopback", Config{Addr: "[::1]:8080", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, true},
		{"default address", Config{Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, true},
		{"without auth", Config{Addr: "127.0.0.1:0", DevLogin: fakeIssuer{}}, false},
		{"all interfaces", Config{Addr: "0.0.0.0:8080", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, false},
		{"empty host", Config{Addr: ":8080", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, false},
		{"public name", Config{Addr: "chat.example.com:8080", Auth: fakeVerifier{}, DevLogin: fakeIssuer{}}, false},
		{"ttl without dev login", Config{DevLoginTTL: time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
