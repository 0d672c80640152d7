package dispatch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// fakeVerifier accepts "tok-<user>" as a token of user; "expired-<user>" and anything
// else are refused, as the nodes' verifier refuses bad and expired tokens.
type fakeVerifier struct{}

func (fakeVerifier) Subject(token string) (string, error) {
	if user, ok := strings.CutPrefix(token, "tok-"); ok && user != "" {
		return user, nil
	}
	return "", errors.New("token invalid")
}

const testAPIKey = "k3y-0123456789abcdef"

// get sends a GET with the given Host (empty: the default) and Authorization (empty:
// none) headers.
func (ts *testServer) get(t *testing.T, path, host, authorization string) response {
	t.Helper()
	req, err := http.NewRequest("GET", ts.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestHistoryPresenceAuth(t *testing.T) {
	deps := func() Deps {
		return Deps{Nodes: testNodes, History: &fakeHistory{inbox: inbox(3)},
			Presence: presenceFunc(func(context.Context, string) (map[string]int, error) { return nil, nil })}
	}
	both := startServer(t, Config{Auth: fakeVerifier{}, APIKey: testAPIKey}, deps())
	keyOnly := startServer(t, Config{APIKey: testAPIKey}, deps())
	tokenOnly := startServer(t, Config{Auth: fakeVerifier{}}, deps())
	open := startServer(t, Config{}, deps())

	const (
		unauthorized = `{"status":401,"msg":"authorization required: send Authorization: Bearer <user token or API key>","success":false,"data":null}`
		invalid      = `{"status":401,"msg":"invalid or expired token","success":false,"data":null}`
		forbidden    = `{"status":403,"msg":"token is not for this user","success":false,"data":null}`
	)
	tests := []struct {
		name          string
		ts            *testServer
		query         string // after the route, e.g. "?userId=alice"
		authorization string
		wantStatus    int
		wantBody      string // exact; empty: not compared
	}{
		{name: "no credential", ts: both, query: "?userId=alice", wantStatus: 401, wantBody: unauthorized},
		{name: "no credential, no userId", ts: both, query: "", wantStatus: 401, wantBody: unauthorized},
		{name: "empty bearer", ts: both, query: "?userId=alice", authorization: "Bearer ", wantStatus: 401, wantBody: unauthorized},
		{name: "basic scheme", ts: both, query: "?userId=alice", authorization: "Basic YWxpY2U6eA==", wantStatus: 401, wantBody: unauthorized},
		{name: "bare token", ts: both, query: "?userId=alice", authorization: "tok-alice", wantStatus: 401, wantBody: unauthorized},
		{name: "invalid token", ts: both, query: "?userId=alice", authorization: "Bearer forged", wantStatus: 401, wantBody: invalid},
		{name: "expired token", ts: both, query: "?userId=alice", authorization: "Bearer expired-alice", wantStatus: 401, wantBody: invalid},
		{name: "key prefix", ts: both, query: "?userId=alice", authorization: "Bearer " + testAPIKey[:len(testAPIKey)-1], wantStatus: 401, wantBody: invalid},
		{name: "key with suffix", ts: both, query: "?userId=alice", authorization: "Bearer " + testAPIKey + "x", wantStatus: 401, wantBody: invalid},
		{name: "other user's token", ts: both, query: "?userId=alice", authorization: "Bearer tok-bob", wantStatus: 403, wantBody: forbidden},
		{name: "own token", ts: both, query: "?userId=alice", authorization: "Bearer tok-alice", wantStatus: 200},
		{name: "own token, scheme in lower case", ts: both, query: "?userId=alice", authorization: "bearer  tok-alice", wantStatus: 200},
		{name: "api key", ts: both, query: "?userId=alice", authorization: "Bearer " + testAPIKey, wantStatus: 200},
		{name: "api key, any user", ts: both, query: "?userId=zed", authorization: "Bearer " + testAPIKey, wantStatus: 200},
		{name: "authenticated, no userId", ts: both, query: "", authorization: "Bearer tok-alice", wantStatus: 400},
		{name: "key only: api key", ts: keyOnly, query: "?userId=alice", authorization: "Bearer " + testAPIKey, wantStatus: 200},
		{name: "key only: user token refused", ts: keyOnly, query: "?userId=alice", authorization: "Bearer tok-alice", wantStatus: 401, wantBody: invalid},
		{name: "key only: none", ts: keyOnly, query: "?userId=alice", wantStatus: 401, wantBody: unauthorized},
		{name: "token only: own token", ts: tokenOnly, query: "?userId=alice", authorization: "Bearer tok-alice", wantStatus: 200},
		{name: "token only: key is no token", ts: tokenOnly, query: "?userId=alice", authorization: "Bearer " + testAPIKey, wantStatus: 401, wantBody: invalid},
		{name: "token only: other user", ts: tokenOnly, query: "?userId=alice", authorization: "Bearer tok-bob", wantStatus: 403, wantBody: forbidden},
		{name: "open: no credential", ts: open, query: "?userId=alice", wantStatus: 200},
		{name: "open: any credential", ts: open, query: "?userId=alice", authorization: "Bearer whatever", wantStatus: 200},
	}
	for _, route := range []string{routeMessages, routePresence} {
		for _, tt := range tests {
			t.Run(route+"/"+tt.name, func(t *testing.T) {
				r := tt.ts.get(t, route+tt.query, "", tt.authorization)
				if r.status != tt.wantStatus {
					t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
				}
				if tt.wantBody != "" && string(r.body) != tt.wantBody {
					t.Errorf("body\n got %s\nwant %s", r.body, tt.wantBody)
				}
				challenge := r.header.Get("WWW-Authenticate")
				if tt.wantStatus == 401 && !strings.HasPrefix(challenge, "Bearer") {
					t.Errorf("401 with WWW-Authenticate %q, want Bearer", challenge)
				}
				if tt.wantStatus != 401 && challenge != "" {
					t.Errorf("%d with WWW-Authenticate %q", tt.wantStatus, challenge)
				}
			})
		}
	}
}

func TestHostCheck(t *testing.T) {
	loopback := startServer(t, Config{}, Deps{Nodes: testNodes})
	named := startServer(t, Config{AllowedHosts: []string{"chat.example.com", "10.0.0.7"}}, Deps{Nodes: testNodes})
	anyAddr := startServer(t, Config{Addr: "0.0.0.0:0"}, Deps{Nodes: testNodes})
	anyNamed := startServer(t, Config{Addr: "0.0.0.0:0", AllowedHosts: []string{"chat.example.com"}}, Deps{Nodes: testNodes})

	const badHost = `{"status":421,"msg":"host not allowed: not one of this server's names","success":false,"data":null}`
	tests := []struct {
		name       string
		ts         *testServer
		path       string
		host       string // empty: the address dialed
		wantStatus int
	}{
		{name: "listen address", ts: loopback, path: routePick, wantStatus: 200},
		{name: "localhost", ts: loopback, path: routePick, host: "localhost:8080", wantStatus: 200},
		{name: "localhost without port", ts: loopback, path: routePick, host: "localhost", wantStatus: 200},
		{name: "localhost upper case, final dot", ts: loopback, path: routePick, host: "LocalHost.:8080", wantStatus: 200},
		{name: "ipv6 loopback", ts: loopback, path: routePick, host: "[::1]:8080", wantStatus: 200},
		{name: "rebinding name", ts: loopback, path: routePick, host: "attacker.example:8080", wantStatus: 421},
		{name: "rebinding name without port", ts: loopback, path: routePick, host: "attacker.example", wantStatus: 421},
		{name: "loopback as subdomain", ts: loopback, path: routePick, host: "127.0.0.1.attacker.example", wantStatus: 421},
		{name: "history refused before auth", ts: loopback, path: routeMessages + "?userId=alice", host: "attacker.example", wantStatus: 421},
		{name: "presence refused", ts: loopback, path: routePresence + "?userId=alice", host: "attacker.example", wantStatus: 421},
		{name: "page refused", ts: loopback, path: "/", host: "attacker.example", wantStatus: 421},
		{name: "healthz whatever the host", ts: loopback, path: routeHealth, host: "attacker.example", wantStatus: 200},
		{name: "readyz whatever the host", ts: loopback, path: routeReady, host: "attacker.example", wantStatus: 200},
		{name: "allowed name", ts: named, path: routePick, host: "chat.example.com:443", wantStatus: 200},
		{name: "allowed name in upper case", ts: named, path: routePick, host: "CHAT.example.com", wantStatus: 200},
		{name: "allowed IP", ts: named, path: routePick, host: "10.0.0.7:8080", wantStatus: 200},
		{name: "allowed list keeps loopback", ts: named, path: routePick, host: "127.0.0.1:8080", wantStatus: 200},
		{name: "not in the list", ts: named, path: routePick, host: "other.example.com", wantStatus: 421},
		{name: "unspecified listen: any host", ts: anyAddr, path: routePick, host: "anything.example", wantStatus: 200},
		{name: "unspecified listen with list: listed", ts: anyNamed, path: routePick, host: "chat.example.com", wantStatus: 200},
		{name: "unspecified listen with list: localhost", ts: anyNamed, path: routePick, host: "localhost", wantStatus: 200},
		{name: "unspecified listen with list: other", ts: anyNamed, path: routePick, host: "attacker.example", wantStatus: 421},
		{name: "unspecified listen with list: healthz", ts: anyNamed, path: routeHealth, host: "attacker.example", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.ts.get(t, tt.path, tt.host, "")
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 421 && string(r.body) != badHost {
				t.Errorf("body\n got %s\nwant %s", r.body, badHost)
			}
		})
	}
}

func TestHostWithoutPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"example.com:80", "example.com"},
		{"[::1]:80", "::1"},
		{"[::1]", "::1"},
		{"::1", "::1"}, // not valid in Host, kept whole
		{"", ""},
	}
	for _, tt := range tests {
		if got := hostWithoutPort(tt.in); got != tt.want {
			t.Errorf("hostWithoutPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
