package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"imgate/health"
)

// TestHealthServer checks the node's and the saver's /readyz: a panicking check is a
// failed check (503, the server keeps serving), the answer has the dispatcher's shape;
// /healthz runs only the node's own check and stays 200.
func TestHealthServer(t *testing.T) {
	h, err := startHealth("127.0.0.1:0", []health.Check{
		servingCheck(func() bool { return false }),
		stateCheck("rabbitmq", func() error { return errors.New("connection refused") }),
		{Name: "postgres", Check: func(context.Context) error { panic("boom") }},
		stateCheck("redis", func() error { return nil }),
	}, newRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	want := `{"status":"fail","checks":{"node":"ok","rabbitmq":"connection refused","postgres":"health: check postgres panicked: boom","redis":"ok"}}`
	for range 2 { // still serving after a panic
		resp, err := http.Get("http://" + h.Addr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 503 || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %d %s %q\nwant 503 %s", resp.StatusCode, body, resp.Header.Get("Content-Type"), want)
		}
	}
}

func TestHealthServerLive(t *testing.T) {
	var draining atomic.Bool
	h, err := startHealth("127.0.0.1:0", []health.Check{
		servingCheck(draining.Load),
		stateCheck("rabbitmq", func() error { return errors.New("connection refused") }),
	}, newRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	get := func() (int, string) {
		resp, err := http.Get("http://" + h.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := get(); st != 200 || body != `{"status":"ok","checks":{"node":"ok"}}` {
		t.Fatalf("with the broker down: %d %s", st, body)
	}
	draining.Store(true)
	if st, body := get(); st != 503 || body != `{"status":"fail","checks":{"node":"draining"}}` {
		t.Fatalf("draining: %d %s", st, body)
	}
}
