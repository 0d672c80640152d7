package dispatch

import (
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// pageCSP is the Content-Security-Policy of the web page's files: scripts, styles and
// fetches only from this origin, WebSockets to any node (a node's wsUrl is another port
// or host), no framing.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// pageFile is one file of Deps.Web, read once by New.
type pageFile struct {
	body        []byte
	contentType string
}

// loadPage reads the top-level files of web (nil: none). The page is a handful of
// small embedded files: serving them from memory costs nothing and keeps fs errors
// out of the request path.
func loadPage(web fs.FS) (map[string]pageFile, error) {
	if web == nil {
		return nil, nil
	}
	entries, err := fs.ReadDir(web, ".")
	if err != nil {
		return nil, fmt.Errorf("dispatch: Deps.Web: %w", err)
	}
	files := make(map[string]pageFile, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(web, e.Name())
		if err != nil {
			return nil, fmt.Errorf("dispatch: Deps.Web: %w", err)
		}
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[e.Name()] = pageFile{body: b, contentType: ct}
	}
	if _, ok := files["index.html"]; !ok {
		return nil, fmt.Errorf("dispatch: Deps.Web has no index.html")
	}
	return files, nil
}

// pageFileFor returns the page file a GET path names: "/" is index.html, "/name" a
// top-level file.
func (s *Server) pageFileFor(p string) (pageFile, bool) {
	name := strings.TrimPrefix(p, "/")
	if name == "" {
		name = "index.html"
	}
	f, ok := s.page[name]
	return f, ok
}

// servePage answers a page file with the headers that keep it in its own origin.
func (s *Server) servePage(ctx *fasthttp.RequestCtx, f pageFile) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	ctx.SetContentType(f.contentType)
	ctx.SetBody(f.body)
}
