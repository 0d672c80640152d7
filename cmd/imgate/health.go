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

// healthServer serves GET /healthz and GET /metrics for the roles that have no
// dispatcher API (node, saver): a health.Checker on net/http, the same answer as the
// dispatcher's, and the role's Prometheus registry (with imgate_dependency_up over
// the same checks).
type healthServer struct {
	srv *http.Server
	ln  net.Listener
	mux *http.ServeMux
}

func startHealth(addr string, checks []health.Check, reg *prometheus.Registry, log *slog.Logger) (*healthServer, error) {
	checker, err := health.New(checks, 0, log)
	if err != nil {
		return nil, err
	}
	if err := registerDependencies(reg, checks); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", checker)
	mux.Handle("GET /metrics", metricsHTTP(reg, log))
	h := &healthServer{ln: ln, mux: mux, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err)
		}
	}()
	log.Info("health listening", "addr", ln.Addr().String())
	return h, nil
}

func (h *healthServer) Addr() net.Addr { return h.ln.Addr() }

// Handle adds a route (a net/http ServeMux pattern) beside /healthz; safe while serving.
func (h *healthServer) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

func (h *healthServer) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// stateCheck adapts a State() error method to a health check.
func stateCheck(name string, state func() error) health.Check {
	return health.Check{Name: name, Check: func(context.Context) error { return state() }}
}

// zkCheck reports ZooKeeper's state without failing /healthz: every role keeps serving
// while it is down (the node stays in the others' last view, the dispatcher picks from
// its own, the saver routes from its last view), so a load balancer must not take the
// cluster out for it.
func zkCheck(state func() error) health.Check {
	c := stateCheck("zookeeper", state)
	c.Degrades = true
	return c
}
