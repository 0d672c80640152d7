package dispatch

import (
	"io"
	"strings"
	"testing"
	"testing/fstest"
)

func TestWebPage(t *testing.T) {
	web := fstest.MapFS{
		"index.html": {Data: []byte("<html>chat</html>")},
		"app.js":     {Data: []byte("import './imclient.js';")},
		"style.css":  {Data: []byte("body{}")},
		"sub/x.js":   {Data: []byte("nested files are not served")},
	}
	ts := startServer(t, Config{}, Deps{Nodes: StaticView{}, Web: web})
	for _, tc := range []struct {
		path, wantType, wantBody string
		status                   int
	}{
		{"/", "text/html; charset=utf-8", "<html>chat</html>", 200},
		{"/index.html", "text/html; charset=utf-8", "<html>chat</html>", 200},
		{"/app.js", "text/javascript; charset=utf-8", "import './imclient.js';", 200},
		{"/style.css", "text/css; charset=utf-8", "body{}", 200},
		{"/sub/x.js", "", "", 404},
		{"/../go.mod", "", "", 404},
		{"/nope.js", "", "", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := ts.client.Get(ts.base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if string(body) != tc.wantBody || resp.Header.Get("Content-Type") != tc.wantType {
				t.Fatalf("body %q, type %q", body, resp.Header.Get("Content-Type"))
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
				resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("page headers: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
	resp, err := ts.client.Post(ts.base+"/app.js", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST a page file: status %d, want 405", resp.StatusCode)
	}
}

func TestWebPageAbsent(t *testing.T) {
	ts := startServer(t, Config{}, Deps{Nodes: StaticView{}})
	resp, err := ts.client.Get(ts.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	if _, err := New(Config{}, Deps{Nodes: StaticView{}, Web: fstest.MapFS{"app.js": {}}}); err == nil {
		t.Fatal("New accepted a page without index.html")
	}
}
