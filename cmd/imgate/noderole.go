package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"imgate/cluster/bus"
	"imgate/cluster/cleanup"
	"imgate/cluster/ports"
	"imgate/cluster/presence"
	"imgate/cluster/registry"
	"imgate/health"
	"imgate/saver"
	"imgate/server"
)

// nodeFlags are the settings of `imgate node`.
type nodeFlags struct {
	cf clusterFlags
	wsFlags
	port     string
	portBase int
	portStep int
	httpAddr string
	apiKey   secretFlag
	logs     logFlags
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	f.cf.register(fs, "zk,amqp,redis,pg,flush")
	fs.StringVar(&f.node.Addr, "ws-addr", "127.0.0.1:8000", "WebSocket listen address HOST:PORT (--port overrides the port)")
	fs.StringVar(&f.port, "port", "", `WebSocket port: a number, or "auto" to take a free one from Redis (--port-base, --port-step)`)
	fs.IntVar(&f.portBase, "port-base", 8875, "first port tried by --port auto")
	fs.IntVar(&f.portStep, "port-step", 10, "distance between the ports tried by --port auto")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:0", "health and metrics endpoints (GET /healthz, /readyz, /metrics) and admin routes (/admin/..., with --api-key) listen address")
	f.apiKey.register(fs, "api-key", "server API key (the dispatcher's --api-key): Bearer credential of the node's admin routes on --http-addr (empty: no admin routes)")
	f.wsFlags.register(fs)
	f.logs.register(fs)
}

func (f *nodeFlags) validate() error {
	if err := f.cf.validate(); err != nil {
		return err
	}
	if f.port != "" && f.port != "auto" {
		p, err := strconv.Atoi(f.port)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf(`--port %q: want a port number or "auto"`, f.port)
		}
		host, _, err := net.SplitHostPort(f.node.Addr)
		if err != nil {
			return fmt.Errorf("--ws-addr %q: %w", f.node.Addr, err)
		}
		f.node.Addr = net.JoinHostPort(host, f.port)
	}
	if f.port != "auto" {
		// The port names the node on the bus (its queue, its route key, its records) and
		// in the registry: a port the kernel picks would leave the two disagreeing.
		if _, p, err := net.SplitHostPort(f.node.Addr); err == nil && p == "0" {
			return errors.New(`a node needs a fixed port: --port 1..65535 or "auto" (not 0)`)
		}
	}
	if f.portBase <= 0 || f.portBase > 65535 || f.portStep <= 0 {
		return errors.New("--port-base must be a port and --port-step positive")
	}
	if f.node.InitTimeout <= 0 || f.node.IdleTimeout <= 0 {
		return errors.New("--init-timeout and --idle-timeout must be positive")
	}
	if err := applyNodeSecurity(&f.node, &f.auth, f.allowedOrigins); err != nil {
		return err
	}
	if _, err := f.apiKey.get(); err != nil {
		return err
	}
	if err := validateAdvertiseURL(f.advertiseURL); err != nil {
		return err
	}
	if f.drainWindow < 0 {
		return errors.New("--drain-window must not be negative")
	}
	return f.node.Validate()
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f nodeFlags
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	f.register(fs)
	log, code, ok := roleFlags(fs, args, stdout, stderr, &f.logs, f.validate)
	if !ok {
		return code
	}
	if err := nodeMain(ctx, &f, log); err != nil {
		log.Error("node stopped", "err", err)
		return 1
	}
	return 0
}

// nodeMain wires a cluster node: port, store reader, bus, server, registration, presence,
// cleanup, health. It returns when ctx ends and the node has stopped.
func nodeMain(ctx context.Context, f *nodeFlags, log *slog.Logger) error {
	cf := &f.cf
	stopPprof, err := startPprof(f.pprof, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	token := registry.NewToken()
	rdb, err := cf.openRedis(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	alloc := ports.New(rdb, ports.Config{Prefix: cf.redisPrefix()})
	host, portStr, _ := net.SplitHostPort(f.node.Addr)
	port, _ := strconv.Atoi(portStr)
	if f.port == "auto" {
		actx, cancel := context.WithTimeout(ctx, cf.connectTimeout)
		port, err = alloc.Acquire(actx, host, f.portBase, f.portStep, token)
		cancel()
		if err != nil {
			return fmt.Errorf("port auto: %w", err)
		}
		f.node.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		log.Info("port allocated", "port", port, "owner", token)
		defer func() {
			rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := alloc.Release(rctx, host, port, token); err != nil {
				log.Warn("port release", "err", err)
			}
		}()
	}
	pg, err := cf.openPostgres(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = pg.Close() }()

	// The node's identity for ACK routing and its queue name are its address: stable
	// across ZooKeeper re-registrations, unique among live nodes (ports are allocated).
	advIP := f.node.AdvertiseHost()
	pres, err := presence.New(rdb, "pending-"+token, 0, presence.Config{Prefix: cf.redisPrefix(), Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = pres.Close() }()

	// Wiring, in one phase: the bus is the server's outbox and relay, the server is the
	// bus's sink, and the registry reads the server's online count.
	metrics := newRegistry()
	amqpCfg := cf.amqpConfig(log)
	amqpCfg.ConfirmLatency = brokerLatency(metrics)
	nb, err := bus.NewNodeBus(amqpCfg, amqpCfg.NodeQueue(advIP, port), bus.NodeRoute(advIP, port))
	if err != nil {
		return err
	}
	defer func() { _ = nb.Close() }()
	f.node.Logger = log
	srv, err := newClusterServer(f, advIP, port, nb, pg, pres)
	if err != nil {
		return err
	}
	nb.Start(srv, srv)
	metrics.MustRegister(nodeCollector{srv})
	unansweredRecords(metrics, nb.Unanswered)
	presenceLag(metrics, pres.WriteLag)
	if err := cf.waitBus(ctx, nb.Ready); err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	ip, boundPort := srv.AdvertiseAddr()

	zkCfg := cf.zkConfig(log)
	zkCfg.Token = token
	zkCfg.Online = srv.Online
	zkCfg.OnReregister = func(id string, epoch int64) {
		pres.SetIdentity(id, epoch)
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := alloc.Claim(rctx, host, boundPort, token); err != nil {
			log.Warn("port re-claim after re-registration", "err", err)
		}
		log.Info("re-registered in zookeeper", "id", id, "epoch", epoch)
	}
	// The health listener comes first: its address is the adminUrl of the znode. The
	// health server itself starts once the registry (its ZooKeeper check) exists.
	healthLn, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	self := registry.NodeInfo{IP: ip, Port: boundPort, WSURL: f.advertiseURL, AdminURL: adminURLOf(healthLn.Addr(), ip)}
	reg, err := registry.New(ctx, zkCfg, self)
	if err != nil {
		_ = healthLn.Close()
		_ = srv.Shutdown(context.Background())
		return err
	}
	pres.SetIdentity(reg.ID(), reg.Epoch())

	watcher, err := registry.NewWatcher(ctx, cf.zkConfig(log))
	if err != nil {
		_ = healthLn.Close()
		_ = reg.Close(context.Background())
		_ = srv.Shutdown(context.Background())
		return err
	}
	defer func() { _ = watcher.Close() }()
	watcher.OnChange(cleanup.New(watcher, alloc, pres, log).OnChange)

	drain := &drainer{srv: srv, mark: reg.Drain, window: f.drainWindow, log: log}
	routes := map[string]http.Handler{}
	if key, _ := f.apiKey.get(); key != "" {
		admin := &nodeAdmin{key: newKeyCheck(key), srv: srv, nodeID: reg.ID, drain: drain}
		for _, p := range adminPaths {
			routes[p] = admin
		}
	}
	health, err := serveHealth(healthLn, []health.Check{
		servingCheck(srv.Draining),
		zkCheck(reg.State),
		stateCheck("rabbitmq", nb.State),
		stateCheck("redis", pres.State),
		{Name: "postgres", Check: func(ctx context.Context) error { _, err := pg.LastSeq(ctx, "imgate:healthz"); return err }},
	}, routes, metrics, log)
	if err != nil {
		_ = healthLn.Close()
		_ = reg.Close(context.Background())
		_ = srv.Shutdown(context.Background())
		return err
	}
	warnAuthOff(log, f.node, srv.WSURL())
	ready := []any{"ws", srv.WSURL(), "id", reg.ID(), "health", "http://" + health.Addr().String()}
	if f.advertiseURL != "" {
		ready = append(ready, "advertised", f.advertiseURL)
	}
	log.Info("imgate node ready", ready...)

	catchUp(ctx, pres, nb, srv)
	// Drain: the draining flag reaches the znode, so no dispatcher hands this node out
	// any more, then the clients get 1001 spread over --drain-window. The node stays
	// registered meanwhile (the saver still routes its users' messages to it), then
	// deregisters and stops.
	stopCtx, cancel := context.WithTimeout(context.Background(), f.drainWindow+15*time.Second)
	defer cancel()
	if err := drain.run(stopCtx, 0); err != nil {
		log.Warn("drain before stop", "err", err)
	}
	errs := []error{reg.Close(stopCtx), srv.Shutdown(stopCtx), pres.Flush(stopCtx), health.Shutdown(stopCtx)}
	if errors.Is(errs[2], presence.ErrFenced) {
		// Deregistered first: the cleaners of the other nodes and the dispatchers fence
		// this node's presence and remove its entries, which is what the last flush was for.
		errs[2] = nil
	}
	return errors.Join(errs...)
}

// newClusterServer builds the node's server: the bus carries its records (Outbox) and
// receipts (Relay), PostgreSQL serves replay.
func newClusterServer(f *nodeFlags, advIP string, port int, nb *bus.NodeBus, pg *saver.Postgres, pr *presence.Tracker) (*server.Server, error) {
	cfg := f.node
	cfg.NodeID = bus.NodeRoute(advIP, port)
	cfg.AdvertiseIP = advIP
	// Deliveries cross the broker, which may drop one (a full node queue): repair holes.
	cfg.RepairGaps = true
	return server.New(cfg, server.Deps{
		Outbox:   nb,
		Inbox:    pg,
		Relay:    nb,
		Presence: pr,
		Groups:   pg,
	})
}

// catchUp runs until ctx ends: each time the node's presence was rewritten after it had
// gone missing from Redis (routed delivery sent its users' messages elsewhere meanwhile),
// and each time its broker connection came back (the bus's messages are transient: a
// restarted broker dropped what the node's queue held), the node catches its users up
// from the store (server.Server.CatchUp).
func catchUp(ctx context.Context, pres *presence.Tracker, nb *bus.NodeBus, srv *server.Server) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pres.Resynced():
			srv.CatchUp() // at start nobody is bound yet: nothing to do
		case <-nb.Reconnected():
			srv.CatchUp()
		}
	}
}
