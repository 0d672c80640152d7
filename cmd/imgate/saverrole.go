package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"imgate/cluster/bus"
	"imgate/cluster/presence"
	"imgate/cluster/registry"
	"imgate/health"
)

// runSaver is `imgate saver`: it consumes the durable save queue, commits each batch to
// PostgreSQL (assigning inbox seqs), publishes the persisted messages to the nodes
// (routed or fanout), hands the receivers presence shows nowhere to the offline webhook
// (--webhook-url), and only then acknowledges the batch.
func runSaver(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf clusterFlags
	var logs logFlags
	var httpAddr, delivery, pprofAddr string
	var heartbeat time.Duration
	var hook webhookFlags
	fs := flag.NewFlagSet("saver", flag.ContinueOnError)
	cf.register(fs, "zk,amqp,redis,pg")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8070", "health and metrics endpoints (GET /healthz, /readyz, /metrics) listen address")
	fs.StringVar(&delivery, "delivery", "routed", "how persisted messages reach nodes: routed (only the nodes holding a device of their users, from Redis presence and the ZooKeeper node list) or fanout (every node)")
	fs.StringVar(&pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address (empty: off)")
	fs.DurationVar(&heartbeat, "amqp-heartbeat", 2*time.Second, "AMQP heartbeat interval: the broker drops a saver silent for about two of them, and a standby saver takes over (a hung active saver stalls every ACK that long)")
	hook.register(fs)
	logs.register(fs)
	validate := func() error {
		if delivery != "routed" && delivery != "fanout" {
			return fmt.Errorf("--delivery %q: want routed or fanout", delivery)
		}
		if err := hook.validate(); err != nil {
			return err
		}
		if heartbeat < time.Second {
			return fmt.Errorf("--amqp-heartbeat %v: want at least 1s", heartbeat)
		}
		if hook.url != "" && delivery != "routed" {
			return errors.New("--webhook-url needs --delivery routed: the saver learns who is offline from presence")
		}
		return cf.validate()
	}
	log, code, ok := roleFlags(fs, args, stdout, stderr, &logs, validate)
	if !ok {
		return code
	}
	stopPprof, err := startPprof(pprofAddr, log)
	if err != nil {
		log.Error("saver stopped", "err", err)
		return 1
	}
	defer stopPprof()
	if err := saverMain(ctx, &cf, httpAddr, delivery, heartbeat, &hook, log); err != nil {
		log.Error("saver stopped", "err", err)
		return 1
	}
	return 0
}

func saverMain(ctx context.Context, cf *clusterFlags, httpAddr, delivery string, heartbeat time.Duration, wf *webhookFlags, log *slog.Logger) error {
	pg, err := cf.openPostgres(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = pg.Close() }()
	checks := []health.Check{{Name: "postgres", Check: func(ctx context.Context) error { _, err := pg.LastSeq(ctx, "imgate:healthz"); return err }}}
	var router bus.Router // nil: fanout
	if delivery == "routed" {
		rdb, err := cf.openRedis(ctx, log)
		if err != nil {
			return err
		}
		defer func() { _ = rdb.Close() }()
		watcher, err := registry.NewWatcher(ctx, cf.zkConfig(log))
		if err != nil {
			return err
		}
		defer func() { _ = watcher.Close() }()
		router = presence.NewRoutes(rdb, cf.redisPrefix(), nodeRoute(watcher))
		checks = append(checks, zkCheck(watcher.State),
			health.Check{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	}
	// The webhook stops after the consumer (defers run last first): the batch in
	// progress may still name offline receivers.
	hook, err := wf.start(log)
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopWebhook(stopCtx, hook, log); err != nil {
			log.Warn("offline webhook: not everything was sent", "err", err)
		}
	}()
	var offline bus.OfflineHook // nil: off
	if hook != nil {
		offline = hook
	}
	reg := newRegistry()
	amqpCfg := cf.amqpConfig(log)
	amqpCfg.Heartbeat = heartbeat
	amqpCfg.ConfirmLatency = brokerLatency(reg)
	amqpCfg.ReceiveAge = receiveAge(reg)
	cons, err := bus.NewSaveConsumer(amqpCfg, newStoreMetrics(reg).saveHandler(pg.SaveOrdered), router, offline)
	if err != nil {
		return err
	}
	defer func() { _ = cons.Close() }()
	if err := cf.waitBus(ctx, cons.Ready); err != nil {
		return err
	}
	watchSaveQueue(ctx, reg, cons.SaveQueueDepth, log)
	health, err := startHealth(httpAddr, append([]health.Check{stateCheck("rabbitmq", cons.State)}, checks...), reg, log)
	if err != nil {
		return err
	}
	log.Info("imgate saver ready", "health", "http://"+health.Addr().String(), "namespace", cf.namespace, "delivery", delivery)
	logStats(ctx, cons, log)
	log.Info("stopping: unacknowledged batches go back to the queue")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return health.Shutdown(stopCtx)
}

// nodeRoute resolves a node's registration id (how presence names it) to its id in
// records and on the route exchange, IP_port, from the watched node list.
func nodeRoute(w *registry.Watcher) func(id string) (string, bool) {
	return func(id string) (string, bool) {
		for _, n := range w.View() {
			if n.ID == id {
				return bus.NodeRoute(n.IP, n.Port), true
			}
		}
		return "", false
	}
}

// logStats logs what the saver published every 10 s while it changes, until ctx ends:
// AMQP messages per chat message is the broker's cost (docs/performance.md).
func logStats(ctx context.Context, cons *bus.SaveConsumer, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var last bus.SaveStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := cons.Stats()
		if st == last {
			continue
		}
		d := bus.SaveStats{Consumed: st.Consumed - last.Consumed, Records: st.Records - last.Records, Messages: st.Messages - last.Messages,
			NodeRecords: st.NodeRecords - last.NodeRecords, Fanouts: st.Fanouts - last.Fanouts, OfflineUnsure: st.OfflineUnsure - last.OfflineUnsure}
		log.Info("saver published", "consumed", d.Consumed, "records", d.Records, "amqpMessages", d.Messages,
			"nodeRecords", d.NodeRecords, "fanoutBatches", d.Fanouts, "offlineUnsure", d.OfflineUnsure, "totalRecords", st.Records)
		last = st
	}
}
