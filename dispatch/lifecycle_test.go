package dispatch

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"imgate/health"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty = valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "full", cfg: Config{Addr: "0.0.0.0:8080", HistoryLimit: 200, ReadTimeout: time.Second}},
		{name: "bad addr", cfg: Config{Addr: "8080"}, wantErr: "dispatch: invalid Addr"},
		{name: "history over max", cfg: Config{HistoryLimit: 201}, wantErr: "dispatch: HistoryLimit 201"},
		{name: "history negative", cfg: Config{HistoryLimit: -1}, wantErr: "dispatch: HistoryLimit -1"},
		{name: "allowed hosts", cfg: Config{AllowedHosts: []string{"chat.example.com", "10.0.0.7", "[fd00::1]", "LOCALHOST."}}},
		{name: "allowed host empty", cfg: Config{AllowedHosts: []string{""}}, wantErr: "dispatch: invalid AllowedHosts entry"},
		{name: "allowed host with port", cfg: Config{AllowedHosts: []string{"chat.example.com:8080"}}, wantErr: "dispatch: invalid AllowedHosts entry"},
		{name: "allowed host URL", cfg: Config{AllowedHosts: []string{"http://chat.example.com"}}, wantErr: "dispatch: invalid AllowedHosts entry"},
		{name: "negative body", cfg: Config{MaxRequestBodySize: -1}, wantErr: "dispatch: negative MaxRequestBodySize"},
		{name: "negative timeout", cfg: Config{CheckTimeout: -time.Second}, wantErr: "dispatch: negative CheckTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name    string
		cfg     Config
		deps    Deps
		wantErr string
	}{
		{name: "no nodes", deps: Deps{}, wantErr: "dispatch: Deps.Nodes is required"},
		{name: "bad config", cfg: Config{HistoryLimit: 1000}, deps: Deps{Nodes: StaticView{}}, wantErr: "dispatch: HistoryLimit"},
		{name: "unnamed check", deps: Deps{Nodes: StaticView{}, Health: []health.Check{{Check: ok}}}, wantErr: "needs a Name"},
		{name: "nil check", deps: Deps{Nodes: StaticView{}, Health: []health.Check{{Name: "zk"}}}, wantErr: "needs a Name and a Check"},
		{name: "duplicate check", deps: Deps{Nodes: StaticView{}, Health: []health.Check{{Name: "zk", Check: ok}, {Name: "zk", Check: ok}}}, wantErr: `duplicate check "zk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, tt.deps); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestServeLifecycle(t *testing.T) {
	s, err := New(Config{}, Deps{Nodes: testNodes})
	if err != nil {
		t.Fatal(err)
	}
	s.http.MaxIdleWorkerDuration = 50 * time.Millisecond
	if s.Addr() != nil {
		t.Fatal("Addr before Serve is not nil")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/api/v1/nodes/pick")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pick: %d", resp.StatusCode)
	}
	if s.Addr() == nil || s.Addr().String() != ln.Addr().String() {
		t.Fatalf("Addr = %v, want %v", s.Addr(), ln.Addr())
	}

	// A second listener is refused and closed.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second Serve = %v", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("refused listener still open")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Shutdown = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after Shutdown")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
	if _, err := client.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("request answered after Shutdown")
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	s, err := New(Config{}, Deps{Nodes: testNodes})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an unstarted server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestStartBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Addr: ln.Addr().String()}, Deps{Nodes: testNodes})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "dispatch: listen") {
		t.Fatalf("Start on a used port = %v", err)
	}
}
