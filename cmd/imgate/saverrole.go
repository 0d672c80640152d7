package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"time"

	"imgate/cluster/bus"
	"imgate/health"
)

// runSaver is `imgate saver`: it consumes the durable save queue, commits each batch to
// PostgreSQL (assigning inbox seqs), publishes the persisted messages to the fanout
// exchange, and only then acknowledges the batch.
func runSaver(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf clusterFlags
	var logs logFlags
	var httpAddr string
	fs := flag.NewFlagSet("saver", flag.ContinueOnError)
	cf.register(fs, "amqp,pg")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8070", "health endpoint (GET /healthz) listen address")
	logs.register(fs)
	log, code, ok := roleFlags(fs, args, stdout, stderr, &logs, cf.validate)
	if !ok {
		return code
	}
	if err := saverMain(ctx, &cf, httpAddr, log); err != nil {
		log.Error("saver stopped", "err", err)
		return 1
	}
	return 0
}

func saverMain(ctx context.Context, cf *clusterFlags, httpAddr string, log *slog.Logger) error {
	pg, err := cf.openPostgres(ctx, log)
	if err != nil {
		return err
	}
	defer func() { _ = pg.Close() }()
	cons, err := bus.NewSaveConsumer(cf.amqpConfig(log), pg.Save)
	if err != nil {
		return err
	}
	defer func() { _ = cons.Close() }()
	if err := cf.waitBus(ctx, cons.Ready); err != nil {
		return err
	}
	health, err := startHealth(httpAddr, []health.Check{
		stateCheck("rabbitmq", cons.State),
		{Name: "postgres", Check: func(ctx context.Context) error { _, err := pg.LastSeq(ctx, "imgate:healthz"); return err }},
	}, log)
	if err != nil {
		return err
	}
	log.Info("imgate saver ready", "health", "http://"+health.Addr().String(), "namespace", cf.namespace)
	<-ctx.Done()
	log.Info("stopping: unacknowledged batches go back to the queue")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return health.Shutdown(stopCtx)
}
