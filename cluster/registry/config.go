package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Config configures Registry and Watcher. The zero value of every field but Servers
// means its documented default.
type Config struct {
	// Servers are the ZooKeeper addresses, "host:port". Required.
	Servers []string
	// Namespace is the root path without the leading slash; nodes register under
	// /<Namespace>/server-list. Default "imgate". May contain inner slashes ("a/b").
	Namespace string
	// SessionTimeout is the ZooKeeper session timeout the client asks for (the server clamps it
	// to its own min/max). A node that cannot reach ZooKeeper for this long loses its znode.
	// Default 10s.
	SessionTimeout time.Duration
	// FlushInterval is how often the registry reads Online and rewrites its znode: at most
	// one write per interval, and none when nothing changed. Default 1s.
	FlushInterval time.Duration
	// Online returns the node's current connection count (server.Server.Online). The
	// registry calls it on its own goroutine once per FlushInterval; it must be cheap (an
	// atomic load). Default: none, the znode carries onlineCounts 0. The watcher ignores it.
	Online func() int64
	// ConnectTimeout bounds the wait for the first session in New/NewWatcher.
	// Default 5s.
	ConnectTimeout time.Duration
	// Token is the registration token stored in the znode (see Node.Token). Default: a new
	// random one (NewToken). Give the same token used as owner for the port claim.
	Token string
	// OnReregister is called (on the registry's goroutine; keep it short) after the registry
	// re-registered under a new ID and epoch following a session expiry. Default none.
	OnReregister func(id string, epoch int64)
	// Dialer opens the TCP connections to ZooKeeper. Default net.DialTimeout. Tests use it to cut
	// a client off and force a session expiry.
	Dialer func(network, address string, timeout time.Duration) (net.Conn, error)
	// Logger receives connection and registration events. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = "imgate"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.Token == "" {
		c.Token = NewToken()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c (zero values are valid: they mean the default).
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("registry: zookeeper: no servers")
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("registry: zookeeper server %q: %w", s, err)
		}
	}
	if ns := c.Namespace; ns != "" {
		if strings.HasPrefix(ns, "/") || strings.HasSuffix(ns, "/") || strings.Contains(ns, "//") ||
			path.Clean("/"+ns) != "/"+ns {
			return fmt.Errorf("registry: zookeeper namespace %q: want segments without leading, trailing or double slashes", ns)
		}
	}
	if c.SessionTimeout < 0 || (c.SessionTimeout > 0 && c.SessionTimeout < time.Second) {
		return fmt.Errorf("registry: zookeeper session timeout %v: want ≥ 1s", c.SessionTimeout)
	}
	if c.FlushInterval < 0 || (c.FlushInterval > 0 && c.FlushInterval < 10*time.Millisecond) {
		return fmt.Errorf("registry: zookeeper flush interval %v: want ≥ 10ms", c.FlushInterval)
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("registry: zookeeper connect timeout %v: want ≥ 0", c.ConnectTimeout)
	}
	return nil
}

// serverListPath is the parent of the node znodes.
func (c Config) serverListPath() string {
	return "/" + c.Namespace + "/server-list"
}

// zkSlogger adapts slog to zk.Logger; the library's chatter goes to Debug.
type zkSlogger struct{ log *slog.Logger }

// Printf implements zk.Logger.
func (l zkSlogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}

// zkConnect opens a session and waits until it is established, at most cfg.ConnectTimeout or
// until ctx ends. cfg must have its defaults applied.
func zkConnect(ctx context.Context, cfg Config) (*zk.Conn, <-chan zk.Event, error) {
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	addr := strings.Join(cfg.Servers, ",")
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithDialer(dialer), zk.WithLogger(zkSlogger{cfg.Logger}), zk.WithLogInfo(false))
	if err != nil {
		return nil, nil, fmt.Errorf("registry: zookeeper %s: %w", addr, err)
	}
	timer := time.NewTimer(cfg.ConnectTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, nil, fmt.Errorf("registry: zookeeper %s unreachable: %w", addr, zk.ErrClosing)
			}
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				cfg.Logger.Info("zookeeper session established", "server", ev.Server,
					"session", fmt.Sprintf("%#x", conn.SessionID()))
				return conn, events, nil
			}
		case <-timer.C:
			conn.Close()
			return nil, nil, fmt.Errorf("registry: zookeeper %s unreachable: no session within %v (run scripts/services.sh up?)",
				addr, cfg.ConnectTimeout)
		case <-ctx.Done():
			conn.Close()
			return nil, nil, fmt.Errorf("registry: zookeeper %s unreachable: %w", addr, ctx.Err())
		}
	}
}

// zkEnsurePath creates p and its missing parents as persistent znodes.
func zkEnsurePath(conn *zk.Conn, p string) error {
	cur := ""
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		cur += "/" + seg
		ok, _, err := conn.Exists(cur)
		if err != nil {
			return fmt.Errorf("registry: zookeeper exists %s: %w", cur, err)
		}
		if ok {
			continue
		}
		if _, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("registry: zookeeper create %s: %w", cur, err)
		}
	}
	return nil
}

// zkTransient reports whether err is a connection problem after which the operation may be
// retried (and may have taken effect).
func zkTransient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}
