package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imgate/health"
)

// healthServer serves GET /healthz, /readyz and /metrics for the roles that have no
// dispatcher API (node, saver): a health.Checker on net/http, the same answers as the
// dispatcher's, and the role's Prometheus registry (with imgate_dependency_up over the
// same checks).
type healthServer struct {
	srv *http.Server
	ln  net.Listener
}

// startHealth listens on addr and serves there (serveHealth, no other routes).
func startHealth(addr string, checks []health.Check, reg *prometheus.Registry, log *slog.Logger) (*healthServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h, err := serveHealth(ln, checks, nil, reg, log)
	if err != nil {
		_ = ln.Close()
	}
	return h, err
}

// serveHealth serves /healthz, /readyz, /metrics and routes (net/http ServeMux patterns,
// e.g. the node's admin routes) on ln.
func serveHealth(ln net.Listener, checks []health.Check, routes map[string]http.Handler, reg *prometheus.Registry, log *slog.Logger) (*healthServer, error) {
	checker, err := health.New(checks, 0, log)
	if err != nil {
		return nil, err
	}
	if err := registerDependencies(reg, checks); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", checker.LiveHandler())
	mux.Handle("GET /readyz", checker.ReadyHandler())
	mux.Handle("GET /metrics", metricsHTTP(reg, log))
	for p, h := range routes {
		mux.Handle(p, h)
	}
	h := &healthServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err)
		}
	}()
	log.Info("health listening", "addr", ln.Addr().String())
	return h, nil
}

func (h *healthServer) Addr() net.Addr { return h.ln.Addr() }

func (h *healthServer) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// stateCheck adapts a State() error method to a health check.
func stateCheck(name string, state func() error) health.Check {
	return health.Check{Name: name, Check: func(context.Context) error { return state() }}
}

// zkCheck reports ZooKeeper's state without failing /readyz: every role keeps serving
// while it is down (the node stays in the others' last view, the dispatcher picks from
// its own, the saver routes from its last view), so a load balancer must not take the
// cluster out for it.
func zkCheck(state func() error) health.Check {
	c := stateCheck("zookeeper", state)
	c.Degrades = true
	return c
}

// servingCheck is the node's liveness (/healthz): it serves new clients unless it
// drains. It is the only check a load balancer in front of the nodes needs.
func servingCheck(draining func() bool) health.Check {
	return health.Check{Name: "node", Live: true, Check: func(context.Context) error {
		if draining() {
			return errors.New("draining")
		}
		return nil
	}}
}
