package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"imgate/cluster/bus"
	"imgate/cluster/presence"
	"imgate/cluster/registry"
	"imgate/health"
)

// runSaver is `imgate saver`: it consumes the durable save queue, commits each batch to
// PostgreSQL (assigning inbox seqs), publishes the persisted messages to the fanout
// exchange, and only then acknowledges the batch.
func runSaver(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf clusterFlags
	var logs logFlags
	var httpAddr, delivery string
	fs := flag.NewFlagSet("saver", flag.ContinueOnError)
	cf.register(fs, "zk,amqp,redis,pg")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8070", "health endpoints (GET /healthz, /readyz) listen address")
	fs.StringVar(&delivery, "delivery", "routed", "how persisted messages reach nodes: routed (only the nodes holding a device of their users, from Redis presence and the ZooKeeper node list) or fanout (every node)")
	logs.register(fs)
	validate := func() error {
		if delivery != "routed" && delivery != "fanout" {
			return fmt.Errorf("--delivery %q: want routed or fanout", delivery)
		}
		return cf.validate()
	}
	log, code, ok := roleFlags(fs, args, stdout, stderr, &logs, validate)
	if !ok {
		return code
	}
	if err := saverMain(ctx, &cf, httpAddr, delivery, log); err != nil {
		log.Error("saver stopped", "err", err)
		return 1
	}
	return 0
}

func saverMain(ctx context.Context, cf *clusterFlags, httpAddr, delivery string, log *slog.Logger) error {
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
	cons, err := bus.NewSaveConsumer(cf.amqpConfig(log), pg.SaveOrdered, router)
	if err != nil {
		return err
	}
	defer func() { _ = cons.Close() }()
	if err := cf.waitBus(ctx, cons.Ready); err != nil {
		return err
	}
	health, err := startHealth(httpAddr, append([]health.Check{stateCheck("rabbitmq", cons.State)}, checks...), log)
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
				return n.IP + "_" + strconv.Itoa(n.Port), true
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
			NodeRecords: st.NodeRecords - last.NodeRecords, Fanouts: st.Fanouts - last.Fanouts}
		log.Info("saver published", "consumed", d.Consumed, "records", d.Records, "amqpMessages", d.Messages,
			"nodeRecords", d.NodeRecords, "fanoutBatches", d.Fanouts, "totalRecords", st.Records)
		last = st
	}
}
