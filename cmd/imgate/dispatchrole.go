package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"imgate/cluster/bus"
	"imgate/cluster/cleanup"
	"imgate/cluster/ports"
	"imgate/cluster/presence"
	"imgate/cluster/registry"
	"imgate/dispatch"
	"imgate/health"
	"imgate/server"
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
	var workerID, dispatchers int
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	cf.register(fs, "zk,amqp,redis,pg")
	fs.IntVar(&workerID, "node-id", server.MaxWorkerID, "snowflake worker id 0..1023 of the server API's msgIds: distinct from every node's and other dispatcher's --node-id")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&wsPath, "ws-path", "/ws", "WebSocket path of the nodes (for wsUrl)")
	fs.IntVar(&dispatchers, "dispatchers", 1, "how many dispatchers pick for these nodes, this one included (1.."+strconv.Itoa(dispatch.MaxDispatchers)+"): set it on each when several run side by side, so that a burst of picks is spread evenly")
	af.register(fs, "the nodes' HS256 token secret: a user's token reads that user's history and presence (empty: none)")
	access.register(fs)
	logs.register(fs)
	log, code, ok := roleFlags(fs, args, stdout, stderr, &logs, func() error {
		if err := cf.validate(); err != nil {
			return err
		}
		if workerID < 0 || workerID > server.MaxWorkerID {
			return fmt.Errorf("--node-id %d out of range 0..%d", workerID, server.MaxWorkerID)
		}
		auth, err := af.verifier()
		if err != nil {
			return err
		}
		if dispatchers < 1 {
			return fmt.Errorf("--dispatchers %d: at least 1", dispatchers)
		}
		dc = dispatch.Config{Addr: httpAddr, Dispatchers: dispatchers}
		if err := access.apply(&dc, auth); err != nil {
			return err
		}
		return dc.Validate()
	})
	if !ok {
		return code
	}
	dc.Logger = log
	if err := dispatchMain(ctx, &cf, dc, wsPath, workerID, log); err != nil {
		log.Error("dispatch stopped", "err", err)
		return 1
	}
	return 0
}

func dispatchMain(ctx context.Context, cf *clusterFlags, dc dispatch.Config, wsPath string, workerID int, log *slog.Logger) error {
	ids, err := server.NewSnowflake(workerID)
	if err != nil {
		return err
	}
	watcher, err := registry.NewWatcher(ctx, cf.zkConfig(log))
	if err != nil {
		return err
	}
	defer func() { _ = watcher.Close() }()
	// The server API sends like a node: to the save queue through its own bus, whose
	// queue the saver routes the persisted result back to (route key apiNode).
	token := registry.NewToken()
	apiNode := "api-" + token
	amqpCfg := cf.amqpConfig(log)
	nb, err := bus.NewNodeBus(amqpCfg, amqpCfg.Prefix+"api."+token, apiNode)
	if err != nil {
		return err
	}
	defer func() { _ = nb.Close() }()
	results := dispatch.NewResults(apiNode, nil)
	nb.Start(results, nil)
	if err := cf.waitBus(ctx, nb.Ready); err != nil {
		return err
	}
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
	pres, err := presence.New(rdb, "dispatch-"+token, 0, presence.Config{Prefix: cf.redisPrefix(), Logger: log})
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
	reg := newRegistry()
	checks := []health.Check{
		zkCheck(watcher.State),
		apiBusCheck(nb.State),
		{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		{Name: "postgres", Check: func(ctx context.Context) error { _, err := pg.LastSeq(ctx, "imgate:healthz"); return err }},
	}
	disp, err := dispatch.New(dc, dispatch.Deps{
		Nodes:    view,
		History:  pg,
		Presence: livePresence{pres, watcher},
		Web:      web.Files,
		Admin:    newClusterAdmin(watcher, dc.APIKey),
		Groups:   pg,
		GroupCaches: nodeCaches{
			nb:    nb,
			nodes: view,
		},
		Outbox:  nb,
		Relay:   nb,
		Results: results,
		IDs:     ids,
		Health:  checks,
		Metrics: metricsHTTP(reg, log),
	})
	if err != nil {
		return err
	}
	reg.MustRegister(picksCollector{disp})
	if err := registerDependencies(reg, checks); err != nil {
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
		url := r.WSURL // the node's --advertise-url
		if url == "" {
			url = "ws://" + net.JoinHostPort(r.IP, strconv.Itoa(r.Port)) + wsPath
		}
		out = append(out, dispatch.Node{
			ID: r.ID, IP: r.IP, Port: r.Port, OnlineCounts: r.OnlineCounts, Draining: r.Draining, WSURL: url,
		})
	}
	return out
}

// newClusterAdmin is the dispatcher's Admin over the nodes the watcher lists, nil without
// an API key (the admin routes then answer 403 before they would use it).
func newClusterAdmin(w *registry.Watcher, apiKey string) dispatch.Admin {
	if apiKey == "" {
		return nil
	}
	return &clusterAdmin{
		key:    apiKey,
		client: &http.Client{Timeout: 5 * time.Second},
		nodes: func() []adminNode {
			var out []adminNode
			for _, n := range w.Nodes() {
				out = append(out, adminNode{id: n.ID, adminURL: n.AdminURL})
			}
			return out
		},
	}
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

// apiBusCheck reports the dispatcher's broker connection without failing /healthz: only
// the server API's sends and broadcasts need it (they answer 503 meanwhile); node pick,
// history and presence keep serving, so a load balancer must not take the dispatcher out.
func apiBusCheck(state func() error) health.Check {
	c := stateCheck("rabbitmq", state)
	c.Degrades = true
	return c
}

// nodeCaches are the registered nodes' membership caches, reached through the broker:
// a change waits for the nodes the dispatcher sees (its probed view: a dead node does
// not hold it up).
type nodeCaches struct {
	nb    *bus.NodeBus
	nodes dispatch.NodeView
}

func (c nodeCaches) Invalidate(ctx context.Context, groupID string) error {
	var routes []string
	for _, n := range c.nodes.Nodes() {
		routes = append(routes, bus.NodeRoute(n.IP, n.Port))
	}
	return c.nb.ChangeGroups(ctx, []string{groupID}, routes)
}
