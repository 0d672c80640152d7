package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"imgate/health"
)

// healthServer serves GET /healthz and /readyz for the roles that have no dispatcher API (node,
// saver): a health.Checker on net/http, the same answer as the dispatcher's.
type healthServer struct {
	srv *http.Server
	ln  net.Listener
}

func startHealth(addr string, checks []health.Check, log *slog.Logger) (*healthServer, error) {
	checker, err := health.New(checks, 0, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", checker.LiveHandler())
	mux.Handle("GET /readyz", checker.ReadyHandler())
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
