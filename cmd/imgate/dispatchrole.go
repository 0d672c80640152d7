package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"imgate/cluster/cleanup"
	"imgate/cluster/ports"
	"imgate/cluster/presence"
	"imgate/cluster/registry"
	"imgate/dispatch"
	"imgate/health"
	"imgate/web"
)

// runDispatch is `imgate dispatch`: the fasthttp API answering from a ZooKeeper-watched
// in-memory view of the nodes, history from PostgreSQL, presence from Redis.
func runDispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf clusterFlags
	var logs logFlags
	var access httpAccessFlags
	var httpAddr, wsPath string
	var af authFlags
	var dc dispatch.Config
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	cf.register(fs, "zk,redis,pg")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&wsPath, "ws-path", "/ws", "WebSocket path of the nodes (for wsUrl)")
	af.register(fs, "the nodes' HS256 token secret: a user's token reads that user's history and presence (empty: none)")
	access.register(fs)
	logs.register(fs)
	log, code, ok := roleFlags(fs, args, stdout, stderr, &logs, func() error {
		if err := cf.validate(); err != nil {
			return err
		}
		auth, err := af.verifier()
		if err != nil {
			return err
		}
		dc = dispatch.Config{Addr: httpAddr}
		var verifier dispatch.TokenVerifier
		if auth != nil {
			verifier = auth
		}
		if err := access.apply(&dc, verifier); err != nil {
			return err
		}
		return dc.Validate()
	})
	if !ok {
		return code
	}
	dc.Logger = log
	if err := dispatchMain(ctx, &cf, dc, wsPath, log); err != nil {
		log.Error("dispatch stopped", "err", err)
		return 1
	}
	return 0
}

func dispatchMain(ctx context.Context, cf *clusterFlags, dc dispatch.Config, wsPath string, log *slog.Logger) error {
	watcher, err := registry.NewWatcher(ctx, cf.zkConfig(log))
	if err != nil {
		return err
	}
	defer func() { _ = watcher.Close() }()
	rdb, err := cf.openRedis(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	pg, err := cf.openPostgres(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = pg.Close() }()
	pres, err := presence.New(rdb, "dispatch-"+registry.NewToken(), 0, presence.Config{Prefix: cf.redisPrefix(), Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = pres.Close() }()
	cleaner := cleanup.New(watcher, ports.New(rdb, ports.Config{Prefix: cf.redisPrefix()}), pres, log)
	watcher.OnChange(cleaner.OnChange)

	// The registry's view is current within a ZooKeeper session; the dispatcher's own
	// probes hide a dead node within a second (docs/operations.md, "Liveness").
	view := dispatch.NewProbedView(&watchedView{w: watcher, wsPath: wsPath}, dispatch.ProbeConfig{Logger: log})
	view.Start()
	defer view.Close()
	disp, err := dispatch.New(dc, dispatch.Deps{
		Nodes:    view,
		History:  pg,
		Presence: livePresence{pres, watcher},
		Page:     web.Index,
		Health: []health.Check{
			zkCheck(watcher.State),
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			{Name: "postgres", Check: func(ctx context.Context) error { _, err := pg.LastSeq(ctx, "imgate:healthz"); return err }},
		},
	})
	if err != nil {
		return err
	}
	if err := disp.Start(ctx); err != nil {
		return err
	}
	log.Info("imgate dispatch ready", "http", "http://"+disp.Addr().String(), "namespace", cf.namespace)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return disp.Shutdown(stopCtx)
}

// watchedView adapts the watcher's snapshot to the dispatcher's NodeView. It converts a
// snapshot once and hands out the same slice until the watcher replaces it, so a pick
// allocates nothing and the Picker sees when the view really changed.
type watchedView struct {
	w      *registry.Watcher
	wsPath string

	mu    sync.Mutex
	src   []registry.Node // guarded by mu: the snapshot nodes was built from
	nodes []dispatch.Node // guarded by mu
}

func (v *watchedView) Nodes() []dispatch.Node {
	src := v.w.View()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.nodes == nil || len(src) != len(v.src) || (len(src) > 0 && &src[0] != &v.src[0]) {
		v.src, v.nodes = src, nodesOf(src, v.wsPath)
	}
	return v.nodes
}

// nodesOf maps registrations to the dispatcher's view.
func nodesOf(recs []registry.Node, wsPath string) []dispatch.Node {
	out := make([]dispatch.Node, 0, len(recs))
	for _, r := range recs {
		out = append(out, dispatch.Node{
			ID: r.ID, IP: r.IP, Port: r.Port, OnlineCounts: r.OnlineCounts, Draining: r.Draining,
			WSURL: "ws://" + net.JoinHostPort(r.IP, strconv.Itoa(r.Port)) + wsPath,
		})
	}
	return out
}

// livePresence answers presence from Redis, keeping only nodes that are registered now:
// a node whose znode is gone has no users, even before its entries are cleaned up.
type livePresence struct {
	p *presence.Tracker
	w *registry.Watcher
}

func (l livePresence) Presence(ctx context.Context, userID string) (map[string]int, error) {
	m, err := l.p.Lookup(ctx, userID)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, n := range l.w.Nodes() {
		live[n.ID] = true
	}
	for id := range m {
		if !live[id] {
			delete(m, id)
		}
	}
	return m, nil
}
