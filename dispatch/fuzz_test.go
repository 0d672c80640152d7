package dispatch

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRoutes drives the dispatcher's handler in memory with arbitrary request lines,
// Host and Authorization headers: whatever the query (overflowing numbers, bad escapes,
// repeated or empty parameters), the handler answers with a known status and, on the
// API routes, a JSON envelope; it never panics.
func FuzzRoutes(f *testing.F) {
	for _, seed := range []string{
		"/api/v1/messages?userId=bob&limit=50",
		"/api/v1/messages?userId=bob&peerId=alice&beforeSeq=99999999999999999999&limit=99999999999999999999",
		"/api/v1/messages?userId=%zz&limit=-1",
		"/api/v1/messages?userId=&userId=bob&limit=+9",
		"/api/v1/presence?userId=bob",
		"/api/v1/nodes/pick?userId=alice",
		"/api/v1/nodes",
		"/healthz",
		"/",
	} {
		f.Add(seed, "127.0.0.1:8080", "Bearer k")
	}
	f.Add("/api/v1/messages?userId=bob", "evil.example", "")
	s, err := New(Config{Addr: "127.0.0.1:0", APIKey: "k"}, Deps{
		Nodes:   StaticView{{ID: "n1", IP: "127.0.0.1", Port: 8000, WSURL: "ws://127.0.0.1:8000/ws"}},
		History: &fakeHistory{inbox: inbox(300)},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, uri, host, authz string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(uri)
		ctx.Request.Header.SetHost(host)
		if authz != "" {
			ctx.Request.Header.Set("Authorization", authz)
		}
		s.handle(&ctx)
		status := ctx.Response.StatusCode()
		switch status {
		case 200, 204, 400, 401, 403, 404, 405, 421, 429, 500, 503:
		default:
			t.Fatalf("GET %q (Host %q): status %d", uri, host, status)
		}
		if len(uri) > 8 && uri[:8] == "/api/v1/" && status != 204 && len(ctx.Response.Body()) > 0 && !json.Valid(ctx.Response.Body()) {
			t.Fatalf("GET %q: body is not JSON: %q", uri, ctx.Response.Body())
		}
	})
}
