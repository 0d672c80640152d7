package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"imgate/dispatch"
	"imgate/health"
	"imgate/message"
	"imgate/saver"
	"imgate/server"
)

// Every role serves GET /metrics on its --http-addr from a registry of its own, built
// here and handed to what serves it (no global registry). The node's figures are read
// from server.Stats() at scrape time (atomic counters the node keeps anyway); the
// others are histograms observed where the work is timed. The table of metrics is in
// docs/operations.md.

// latencyBuckets are the buckets of every latency histogram, the node's own included.
var latencyBuckets = server.LatencyBounds[:]

// newRegistry returns a role's registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHTTP serves reg in the Prometheus text format; collection errors are logged
// and the rest is served.
func metricsHTTP(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLog{log.With("component", "metrics")},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// promLog hands promhttp's errors to slog.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

var (
	descConnections = prometheus.NewDesc("imgate_connections", "Open WebSocket connections by state: handshaking (before a valid CONNECT_INIT) or bound.", []string{"state"}, nil)
	descBinds       = prometheus.NewDesc("imgate_binds_total", "Connections bound to a user by CONNECT_INIT.", nil, nil)
	descCloses      = prometheus.NewDesc("imgate_closes_total", "Connections closed or refused, by reason and WebSocket close code (0: refused before the upgrade, or the peer went away).", []string{"reason", "code"}, nil)
	descAccepted    = prometheus.NewDesc("imgate_messages_accepted_total", "Content messages accepted (handed to the store or the bus).", nil, nil)
	descRefused     = prometheus.NewDesc("imgate_messages_refused_total", "ERROR answers to clients, by ERROR code.", []string{"code"}, nil)
	descDelivered   = prometheus.NewDesc("imgate_deliveries_total", "Persisted messages (and receipts) this node routed to its devices.", nil, nil)
	descReplayed    = prometheus.NewDesc("imgate_replayed_messages_total", "Messages replayed from the store (CONNECT_INIT replays, gap repairs, catch-ups).", nil, nil)
	descRepairs     = prometheus.NewDesc("imgate_gap_repairs_total", "Gap repairs and catch-ups run (cluster nodes).", nil, nil)
	descQueued      = prometheus.NewDesc("imgate_outbound_queue_bytes", "Bytes waiting in the event loops' queues for their connections.", nil, nil)
	descNewestReads = prometheus.NewDesc("imgate_newest_seq_reads_total", "Store reads of newest seqs for CONNECT_INITs and catch-ups: one read serves every job a replay worker took at once, so imgate_binds_total / this is about the mean batch.", nil, nil)
	descAcceptErrs  = prometheus.NewDesc("imgate_accept_errors_total", "Failed accepts of TCP connections (out of file descriptors, say).", nil, nil)
	descLatency     = prometheus.NewDesc("imgate_message_latency_seconds", "Time from a message's accept (its chatTime, millisecond resolution) to its ACK: stage persisted (came back from the store) and written (ACK written to the sender's socket), on the accepting node.", []string{"stage"}, nil)
	descGroupChecks = prometheus.NewDesc("imgate_group_checks_total", "Group messages checked by the node's membership cache, by answer: member, non_member (refused on the node with ERROR forbidden), miss (left to the saver's check), load_dropped (a miss whose store read did not fit the load queue).", []string{"answer"}, nil)
	descDependency  = prometheus.NewDesc("imgate_dependency_up", "1 when the role's health check of the dependency passes, else 0 (the checks of /healthz).", []string{"dependency"}, nil)
	descPicks       = prometheus.NewDesc("imgate_picks_total", "Node picks answered by the dispatcher, by node id.", []string{"node"}, nil)
)

// nodeCollector exports a node's server.Stats().
type nodeCollector struct{ srv *server.Server }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descBinds, descCloses, descAccepted, descRefused, descDelivered,
		descReplayed, descRepairs, descNewestReads, descQueued, descAcceptErrs, descLatency, descGroupChecks} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnections, st.Open-st.Online, "handshaking")
	gauge(descConnections, st.Online, "bound")
	counter(descBinds, st.Binds)
	for reason, n := range st.Closes {
		counter(descCloses, n, reason, strconv.Itoa(server.CloseCode(reason)))
	}
	counter(descAccepted, st.Accepted)
	for code, n := range st.Errors {
		counter(descRefused, n, code)
	}
	counter(descDelivered, st.Delivered)
	counter(descReplayed, st.Replayed)
	counter(descRepairs, st.Repaired)
	counter(descNewestReads, st.NewestReads)
	gauge(descQueued, st.QueuedBytes)
	counter(descAcceptErrs, st.AcceptErrors)
	for answer, n := range st.GroupChecks {
		counter(descGroupChecks, n, answer)
	}
	for _, h := range []struct {
		stage string
		h     server.Histogram
	}{{"persisted", st.Persisted}, {"written", st.Written}} {
		ch <- prometheus.MustNewConstHistogram(descLatency, h.h.Count, h.h.Sum, h.h.Buckets, h.stage)
	}
}

// dependencyCollector exports the role's health checks as imgate_dependency_up: the
// same checks /healthz runs, run again at each scrape (each is bounded by the
// Checker's timeout; most read a state the client keeps, PostgreSQL's asks it).
type dependencyCollector struct{ checker *health.Checker }

func (c dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descDependency }

func (c dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.checker.Results(context.Background()) {
		up := 1.0
		if r.Err != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(descDependency, prometheus.GaugeValue, up, r.Name)
	}
}

// registerDependencies adds imgate_dependency_up over checks to reg.
func registerDependencies(reg *prometheus.Registry, checks []health.Check) error {
	checker, err := health.New(checks, 0, nil)
	if err != nil {
		return err
	}
	return reg.Register(dependencyCollector{checker})
}

// picksCollector exports the dispatcher's picks per node.
type picksCollector struct{ disp *dispatch.Server }

func (c picksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descPicks }

func (c picksCollector) Collect(ch chan<- prometheus.Metric) {
	for id, n := range c.disp.Picks() {
		ch <- prometheus.MustNewConstMetric(descPicks, prometheus.CounterValue, float64(n), id)
	}
}

// storeMetrics time the store's save transactions: the standalone batcher's
// Store.Save and the saver's handler.
type storeMetrics struct {
	batch  prometheus.Histogram
	commit prometheus.Histogram
	failed prometheus.Counter
}

func newStoreMetrics(reg *prometheus.Registry) *storeMetrics {
	m := &storeMetrics{
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imgate_store_batch_records",
			Help: "Records per store transaction (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imgate_store_commit_seconds",
			Help: "Duration of one store save transaction, failed ones included.", Buckets: latencyBuckets}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "imgate_store_commit_failures_total",
			Help: "Store save transactions that failed."}),
	}
	reg.MustRegister(m.batch, m.commit, m.failed)
	return m
}

func (m *storeMetrics) observe(records int, start time.Time, err error) {
	m.commit.Observe(time.Since(start).Seconds())
	m.batch.Observe(float64(records))
	if err != nil {
		m.failed.Inc()
	}
}

// meteredStore is a saver.Store whose Save is timed (the standalone batcher's store).
type meteredStore struct {
	saver.Store
	m *storeMetrics
}

func (s meteredStore) Save(ctx context.Context, recs []message.Record) ([]message.Saved, error) {
	start := time.Now()
	out, err := s.Store.Save(ctx, recs)
	s.m.observe(len(recs), start, err)
	return out, err
}

// saveHandler times the saver's handler (bus.SaveHandler's shape).
func (m *storeMetrics) saveHandler(h func(context.Context, []message.Record, func()) ([]message.Saved, error)) func(context.Context, []message.Record, func()) ([]message.Saved, error) {
	return func(ctx context.Context, recs []message.Record, locked func()) ([]message.Saved, error) {
		start := time.Now()
		out, err := h(ctx, recs, locked)
		m.observe(len(recs), start, err)
		return out, err
	}
}

// brokerLatency registers the publish → confirm histogram and returns its observer
// for rabbit.Config.ConfirmLatency.
func brokerLatency(reg *prometheus.Registry) func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imgate_broker_confirm_seconds",
		Help: "Time from an AMQP publish to the broker's confirm.", Buckets: latencyBuckets})
	reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// receiveAge registers the saver's record-age histogram and returns its observer for
// bus.Config.ReceiveAge.
func receiveAge(reg *prometheus.Registry) func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imgate_saver_receive_age_seconds",
		Help:    "Age of a record (from its chatTime, millisecond resolution) when the saver takes it from the save queue: the node to saver hop and the wait in the queue.",
		Buckets: latencyBuckets})
	reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// saveQueueInterval is how often the saver reads the save queue's depth.
const saveQueueInterval = 5 * time.Second

// watchSaveQueue keeps imgate_save_queue_messages at the save queue's depth, read
// every saveQueueInterval with depth (a passive declare), until ctx ends. While the
// broker is down the gauge keeps its last value (imgate_dependency_up says why).
func watchSaveQueue(ctx context.Context, reg *prometheus.Registry, depth func(context.Context) (int, error), log *slog.Logger) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "imgate_save_queue_messages",
		Help: "Messages (nodes' batches) ready in the save queue, read every 5s."})
	reg.MustRegister(g)
	go func() {
		t := time.NewTicker(saveQueueInterval)
		defer t.Stop()
		for {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			n, err := depth(qctx)
			cancel()
			if err == nil {
				g.Set(float64(n))
			} else {
				log.Debug("save queue depth", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// presenceLag registers imgate_presence_write_lag_seconds over lag.
func presenceLag(reg *prometheus.Registry, lag func() time.Duration) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgate_presence_write_lag_seconds",
		Help: "Age of the oldest presence change of this node not yet written to Redis (0: all written)."},
		func() float64 { return lag().Seconds() }))
}

// unansweredRecords registers imgate_unanswered_records over n.
func unansweredRecords(reg *prometheus.Registry, n func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgate_unanswered_records",
		Help: "Records this node published to the save queue whose result has not come back yet (kept to publish again after a broker restart)."},
		func() float64 { return float64(n()) }))
}
