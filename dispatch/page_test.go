package dispatch

import (
	"io"
	"testing"
)

func TestWebPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		page   []byte
		status int
	}{
		{"served", []byte("<html>chat</html>"), 200},
		{"none", nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{}, Deps{Nodes: StaticView{}, Page: tc.page})
			resp, err := ts.client.Get(ts.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.page != nil && (string(body) != string(tc.page) || resp.Header.Get("Content-Type") != "text/html; charset=utf-8") {
				t.Fatalf("body %q, type %q", body, resp.Header.Get("Content-Type"))
			}
		})
	}
}
