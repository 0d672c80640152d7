package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"imgate/dispatch"
)

// healthServer serves GET /healthz for the roles that have no dispatcher API (node,
// saver): {"status":"ok","checks":{"rabbitmq":"ok",...}}, or 503 with the failing
// checks' errors.
type healthServer struct {
	srv *http.Server
	ln  net.Listener
}

func startHealth(addr string, checks []dispatch.Check, log *slog.Logger) (*healthServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		status, body := runChecks(r.Context(), checks)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
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

// runChecks runs every check concurrently, each bounded by 2 s.
func runChecks(ctx context.Context, checks []dispatch.Check) (int, map[string]any) {
	res := make(map[string]string, len(checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	status := http.StatusOK
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := c.Check(cctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res[c.Name] = err.Error()
				status = http.StatusServiceUnavailable
				return
			}
			res[c.Name] = "ok"
		}()
	}
	wg.Wait()
	word := "ok"
	if status != http.StatusOK {
		word = "unavailable"
	}
	return status, map[string]any{"status": word, "checks": res}
}

// stateCheck adapts a State() error method to a health check.
func stateCheck(name string, state func() error) dispatch.Check {
	return dispatch.Check{Name: name, Check: func(context.Context) error { return state() }}
}
