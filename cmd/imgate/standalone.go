package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imgate/dispatch"
	"imgate/health"
	"imgate/message"
	"imgate/saver"
	"imgate/server"
	"imgate/web"
)

// standaloneFlags are the settings of `imgate standalone`.
type standaloneFlags struct {
	httpAddr string
	dataDir  string
	store    string
	sync     string
	wsFlags
	access httpAccessFlags
	hook   webhookFlags
	logs   logFlags
	// disp is the dispatcher's config, built by validate.
	disp dispatch.Config
}

func (f *standaloneFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.node.Addr, "ws-addr", "127.0.0.1:8000", "WebSocket listen address HOST:PORT (path --ws-path)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "dispatcher HTTP listen address HOST:PORT (node pick, history, health)")
	fs.StringVar(&f.dataDir, "data-dir", "imgate-data", "directory of the embedded SQLite store")
	fs.StringVar(&f.store, "store", "sqlite", "message store: sqlite (durable), memory (lost on exit) or none (live only, at-most-once)")
	fs.StringVar(&f.sync, "sqlite-sync", "FULL", "SQLite synchronous level: FULL (power-loss safe) or NORMAL (process-crash safe)")
	f.wsFlags.register(fs)
	f.access.register(fs)
	f.hook.register(fs)
	f.logs.register(fs)
}

// validate checks what the server and dispatcher configs do not.
func (f *standaloneFlags) validate() error {
	switch f.store {
	case "sqlite", "memory", "none":
	default:
		return fmt.Errorf("--store %q: want sqlite, memory or none", f.store)
	}
	if f.store == "sqlite" && f.dataDir == "" {
		return errors.New("--data-dir is required with --store sqlite")
	}
	if err := f.hook.validate(); err != nil {
		return err
	}
	if f.hook.url != "" && f.store == "none" {
		return errors.New("--webhook-url needs a store: it reports persisted messages (with their seq)")
	}
	if f.node.InitTimeout <= 0 || f.node.IdleTimeout <= 0 {
		return errors.New("--init-timeout and --idle-timeout must be positive")
	}
	f.node.NodeID = "standalone"
	if err := applyNodeSecurity(&f.node, &f.auth, f.allowedOrigins); err != nil {
		return err
	}
	if err := validateAdvertiseURL(f.advertiseURL); err != nil {
		return err
	}
	if f.drainWindow < 0 {
		return errors.New("--drain-window must not be negative")
	}
	if err := f.node.Validate(); err != nil {
		return err
	}
	// The dispatcher verifies history and presence tokens with the node's verifier:
	// one --auth-secret signs both.
	f.disp = dispatch.Config{Addr: f.httpAddr}
	auth, _ := f.node.Auth.(*server.HMACAuth)
	if err := f.access.apply(&f.disp, auth); err != nil {
		return err
	}
	return f.disp.Validate()
}

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f standaloneFlags
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	f.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, "standalone", err)
	}
	log, err := f.logs.logger(stderr)
	if err == nil {
		err = f.validate()
	}
	if err != nil {
		return usageError(stderr, "standalone", err)
	}
	if err := standalone(ctx, &f, log); err != nil {
		log.Error("standalone stopped", "err", err)
		return 1
	}
	return 0
}

// storeParts is what the chosen --store provides.
type storeParts struct {
	store saver.Store // nil for --store none
	close func() error
}

func openStore(ctx context.Context, f *standaloneFlags, log *slog.Logger) (storeParts, error) {
	switch f.store {
	case "memory":
		m := saver.NewMemory()
		return storeParts{store: m, close: m.Close}, nil
	case "sqlite":
		if err := os.MkdirAll(f.dataDir, 0o750); err != nil {
			return storeParts{}, fmt.Errorf("data dir: %w", err)
		}
		path := filepath.Join(f.dataDir, "imgate.db")
		db, err := saver.OpenSQLite(ctx, saver.SQLiteConfig{Path: path, Synchronous: f.sync, Logger: log})
		if err != nil {
			return storeParts{}, err
		}
		log.Info("store opened", "kind", "sqlite", "path", path, "synchronous", f.sync)
		return storeParts{store: db, close: db.Close}, nil
	}
	return storeParts{close: func() error { return nil }}, nil
}

// standalone runs node, dispatcher and store in this process until ctx ends.
func standalone(ctx context.Context, f *standaloneFlags, log *slog.Logger) error {
	f.node.Logger = log.With("role", "node")
	stopPprof, err := startPprof(f.pprof, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	sp, err := openStore(ctx, f, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := sp.close(); err != nil {
			log.Error("store close", "err", err)
		}
	}()

	hook, err := f.hook.start(log)
	if err != nil {
		return err
	}
	if hook != nil {
		defer func() {
			// A no-op after the ordered stop below; on an early return, a short drain.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = hook.Close(ctx)
		}()
	}

	// Wired in one phase: the batcher is the node's outbox, the node the batcher's sink
	// and the node tells the webhook (when on) of receivers without a device.
	// --store none has neither: the node delivers live.
	// The server API's messages go through the same batcher; its Results hand each
	// persisted one to the request waiting for it, then the batch to the node.
	reg := newRegistry()
	deps := server.Deps{}
	if hook != nil {
		deps.Offline = hook
	}
	var batcher *saver.Batcher
	if sp.store != nil {
		batcher = saver.NewBatcher(meteredStore{sp.store, newStoreMetrics(reg)}, saver.BatcherConfig{Logger: log})
		deps.Outbox, deps.Inbox, deps.Groups = batcher, sp.store, sp.store
	}
	srv, err := server.New(f.node, deps)
	if err != nil {
		return err
	}
	results := dispatch.NewResults(apiNode, srv)
	if batcher != nil {
		batcher.Start(results)
		defer func() {
			// Idempotent: a no-op after the ordered stop below.
			_ = batcher.Close(context.Background())
		}()
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	reg.MustRegister(nodeCollector{srv})

	drain := &drainer{srv: srv, window: f.drainWindow, log: log}
	disp, err := startDispatcher(ctx, f, srv, sp.store, batcher, results, drain, reg, log)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	// The dispatcher's own page opens the WebSocket: its origins (on the port it
	// bound) are allowed besides --allowed-origins.
	if err := srv.AllowOrigins(pageOrigins(disp.Addr().String(), f.disp.AllowedHosts)...); err != nil {
		_ = disp.Shutdown(context.Background())
		_ = srv.Shutdown(context.Background())
		return err
	}
	warnAuthOff(log, f.node, srv.WSURL())
	log.Info("imgate standalone ready", "ws", srv.WSURL(), "http", "http://"+disp.Addr().String(), "store", f.store)

	<-ctx.Done()
	log.Info("stopping: closing clients with 1001", "window", f.drainWindow)
	stopCtx, cancel := context.WithTimeout(context.Background(), f.drainWindow+10*time.Second)
	defer cancel()
	if err := drain.run(stopCtx, 0); err != nil {
		log.Warn("drain before stop", "err", err)
	}
	var errs []error
	errs = append(errs, srv.Shutdown(stopCtx))
	if batcher != nil {
		errs = append(errs, batcher.Close(stopCtx))
	}
	// After the batcher: its last batches may still name offline receivers.
	errs = append(errs, stopWebhook(stopCtx, hook, log))
	errs = append(errs, disp.Shutdown(stopCtx))
	return errors.Join(errs...)
}

// startDispatcher serves the dispatcher routes answering with this node.
func startDispatcher(ctx context.Context, f *standaloneFlags, srv *server.Server, store saver.Store, batcher *saver.Batcher,
	results *dispatch.Results, drain *drainer, reg *prometheus.Registry, log *slog.Logger) (*dispatch.Server, error) {
	wsURL := f.advertiseURL
	if wsURL == "" {
		wsURL = srv.WSURL()
	}
	view := dispatch.NodeViewFunc(func() []dispatch.Node {
		ip, port := srv.AdvertiseAddr()
		return []dispatch.Node{{
			ID: srv.NodeID(), IP: ip, Port: port, OnlineCounts: srv.Online(),
			WSURL: wsURL, Draining: srv.Draining(),
		}}
	})
	deps := dispatch.Deps{Nodes: view, Presence: localPresence{srv}, Web: web.Files, Admin: localAdmin{srv: srv, drain: drain},
		Metrics: metricsHTTP(reg, log), Relay: localRelay{srv}, Results: results, IDs: nodeIDs{srv}}
	deps.Health = append(deps.Health, servingCheck(srv.Draining))
	if store != nil {
		deps.History, deps.Groups, deps.Outbox, deps.GroupCaches = store, store, batcher, localCaches{srv}
		deps.Health = append(deps.Health, health.Check{Name: "store", Check: func(ctx context.Context) error {
			_, err := store.LastSeq(ctx, "imgate:healthz")
			return err
		}})
	}
	dc := f.disp
	dc.Logger = log.With("role", "dispatch")
	disp, err := dispatch.New(dc, deps)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(picksCollector{disp})
	if err := registerDependencies(reg, deps.Health); err != nil {
		return nil, err
	}
	if err := disp.Start(ctx); err != nil {
		return nil, err
	}
	return disp, nil
}

// localPresence answers presence from the node's own session table.
type localPresence struct{ srv *server.Server }

func (p localPresence) Presence(_ context.Context, userID string) (map[string]int, error) {
	if n := p.srv.Devices(userID); n > 0 {
		return map[string]int{p.srv.NodeID(): n}, nil
	}
	return map[string]int{}, nil
}

// apiNode is the Record.Node of the standalone server API's messages: not the node's
// id, so the node sends them no ACK.
const apiNode = "api"

// localRelay delivers a broadcast on this node, the only one.
type localRelay struct{ srv *server.Server }

func (r localRelay) Relay(rec message.Record) error {
	r.srv.Saved([]message.Saved{{Record: rec}})
	return nil
}

// localCaches is the node's membership cache, in this process: a change is dropped
// from it before the group route answers.
type localCaches struct{ srv *server.Server }

func (c localCaches) Invalidate(_ context.Context, groupID string) error {
	c.srv.InvalidateGroups([]string{groupID})
	return nil
}

// nodeIDs gives the server API the node's own msgIds (one snowflake, no collision).
type nodeIDs struct{ srv *server.Server }

func (n nodeIDs) Next() int64 { return n.srv.NewMsgID() }
