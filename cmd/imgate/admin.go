package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"imgate/dispatch"
	"imgate/server"
)

// validateAdvertiseURL checks --advertise-url: empty, or a ws:// or wss:// URL with a host.
func validateAdvertiseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("--advertise-url %q: want ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH", s)
	}
	return nil
}

// drainer drains this process's node once: the registry's draining flag first (when the
// node is registered), so that no dispatcher hands the node out any more, then the 1001
// closes spread over the window. The admin route starts it in the background; SIGTERM
// runs it (again: a second run only closes faster) before the stop.
type drainer struct {
	srv    *server.Server
	mark   func(context.Context) error // nil for standalone: the view reads srv.Draining
	window time.Duration               // the --drain-window default
	log    *slog.Logger

	once sync.Once
}

// run drains with window (0: the default) and returns when no client is left or ctx ends.
func (d *drainer) run(ctx context.Context, window time.Duration) error {
	if window <= 0 {
		window = d.window
	}
	if d.mark != nil {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.mark(mctx); err != nil {
			d.log.Warn("drain: the draining flag is not in zookeeper yet; closing clients anyway", "err", err)
		}
		cancel()
	}
	return d.srv.Drain(ctx, window)
}

// start runs the drain in the background, once; false when it was started before.
func (d *drainer) start(window time.Duration) bool {
	started := false
	d.once.Do(func() {
		started = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), max(window, d.window)+time.Minute)
			defer cancel()
			if err := d.run(ctx, window); err != nil {
				d.log.Warn("drain", "err", err)
			}
		}()
	})
	return started
}

// keyCheck compares bearer credentials with the server API key in constant time.
type keyCheck struct{ hash [sha256.Size]byte }

func newKeyCheck(key string) *keyCheck { return &keyCheck{hash: sha256.Sum256([]byte(key))} }

func (k *keyCheck) ok(r *http.Request) bool {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(v[7:])))
	return subtle.ConstantTimeCompare(h[:], k.hash[:]) == 1
}

// nodeAdmin serves a node's admin routes on its --http-addr, behind the server API key
// (the dispatcher's --api-key), for the dispatcher's admin routes:
//
//	GET  /admin/sessions?userId=U   {"nodeId":ID,"sessions":[{"connId","remoteAddr"}]}
//	POST /admin/kick?userId=U       {"nodeId":ID,"closed":N}
//	POST /admin/drain?window=D      {"nodeId":ID,"draining":true,"started":bool}
type nodeAdmin struct {
	key    *keyCheck
	srv    *server.Server
	nodeID func() string
	drain  *drainer
}

// adminPaths are the node's admin routes.
var adminPaths = []string{"GET /admin/sessions", "POST /admin/kick", "POST /admin/drain"}

func (a *nodeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.key.ok(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="imgate"`)
		adminJSON(w, http.StatusUnauthorized, map[string]any{"error": "the server API key is required"})
		return
	}
	user := r.URL.Query().Get("userId")
	if r.URL.Path != "/admin/drain" && (user == "" || len(user) > 256) {
		adminJSON(w, http.StatusBadRequest, map[string]any{"error": "userId is required"})
		return
	}
	switch r.URL.Path {
	case "/admin/sessions":
		list := []map[string]string{}
		for _, s := range a.srv.Sessions(user) {
			list = append(list, map[string]string{"connId": s.ConnID, "remoteAddr": s.RemoteAddr})
		}
		adminJSON(w, http.StatusOK, map[string]any{"nodeId": a.nodeID(), "sessions": list})
	case "/admin/kick":
		adminJSON(w, http.StatusOK, map[string]any{"nodeId": a.nodeID(), "closed": a.srv.Kick(user)})
	default:
		var window time.Duration
		if v := r.URL.Query().Get("window"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				adminJSON(w, http.StatusBadRequest, map[string]any{"error": "window must be a duration, e.g. 30s"})
				return
			}
			window = d
		}
		started := a.drain.start(window)
		adminJSON(w, http.StatusOK, map[string]any{"nodeId": a.nodeID(), "draining": true, "started": started})
	}
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// adminURLOf is the base URL of the admin routes on the health listener addr: its host,
// or advIP when it listens on every interface.
func adminURLOf(addr net.Addr, advIP string) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = advIP
	}
	return "http://" + net.JoinHostPort(host, port)
}

// localAdmin is standalone's dispatch.Admin: its one node is this process's.
type localAdmin struct {
	srv   *server.Server
	drain *drainer
}

func (l localAdmin) Sessions(_ context.Context, userID string) ([]dispatch.Session, error) {
	var out []dispatch.Session
	for _, s := range l.srv.Sessions(userID) {
		out = append(out, dispatch.Session{NodeID: l.srv.NodeID(), ConnID: s.ConnID, RemoteAddr: s.RemoteAddr})
	}
	return out, nil
}

func (l localAdmin) Kick(_ context.Context, userID string) (int, error) {
	return l.srv.Kick(userID), nil
}

func (l localAdmin) Drain(_ context.Context, nodeID string, window time.Duration) error {
	if nodeID != l.srv.NodeID() {
		return fmt.Errorf("%w %q (this process's node is %q)", dispatch.ErrUnknownNode, nodeID, l.srv.NodeID())
	}
	l.drain.start(window)
	return nil
}

// clusterAdmin is the dispatcher's dispatch.Admin: it calls the admin routes of the nodes
// of the watcher's view (their znodes' adminUrl) with the server API key.
type clusterAdmin struct {
	nodes  func() []adminNode
	key    string
	client *http.Client
}

// adminNode is what clusterAdmin needs of a registered node.
type adminNode struct{ id, adminURL string }

// call POSTs (or GETs) path on node n and decodes the JSON answer into v.
func (c *clusterAdmin) call(ctx context.Context, method string, n adminNode, path string, v any) error {
	if n.adminURL == "" {
		return fmt.Errorf("node %s has no adminUrl in its znode", n.id)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.adminURL+path, nil)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.id, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.id, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %s: %s %s: status %d", n.id, method, path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("node %s: %s %s: %w", n.id, method, path, err)
	}
	return nil
}

// each runs f on every node concurrently and joins the errors.
func (c *clusterAdmin) each(f func(n adminNode) error) error {
	nodes := c.nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *clusterAdmin) Sessions(ctx context.Context, userID string) ([]dispatch.Session, error) {
	var mu sync.Mutex
	var out []dispatch.Session
	err := c.each(func(n adminNode) error {
		var ans struct {
			Sessions []struct{ ConnID, RemoteAddr string }
		}
		if err := c.call(ctx, http.MethodGet, n, "/admin/sessions?userId="+url.QueryEscape(userID), &ans); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range ans.Sessions {
			out = append(out, dispatch.Session{NodeID: n.id, ConnID: s.ConnID, RemoteAddr: s.RemoteAddr})
		}
		return nil
	})
	return out, err
}

func (c *clusterAdmin) Kick(ctx context.Context, userID string) (int, error) {
	var mu sync.Mutex
	total := 0
	err := c.each(func(n adminNode) error {
		var ans struct{ Closed int }
		if err := c.call(ctx, http.MethodPost, n, "/admin/kick?userId="+url.QueryEscape(userID), &ans); err != nil {
			return err
		}
		mu.Lock()
		total += ans.Closed
		mu.Unlock()
		return nil
	})
	return total, err
}

func (c *clusterAdmin) Drain(ctx context.Context, nodeID string, window time.Duration) error {
	for _, n := range c.nodes() {
		if n.id == nodeID {
			path := "/admin/drain"
			if window > 0 {
				path += "?window=" + url.QueryEscape(window.String())
			}
			var ans struct{ Draining bool }
			return c.call(ctx, http.MethodPost, n, path, &ans)
		}
	}
	return fmt.Errorf("%w %q", dispatch.ErrUnknownNode, nodeID)
}
