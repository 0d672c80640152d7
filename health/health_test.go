package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name       string
		checks     []Check
		wantStatus int
		wantBody   string
	}{
		{name: "no checks", wantStatus: 200, wantBody: `{"status":"ok","checks":{}}`},
		{name: "in the given order", checks: []Check{{Name: "zookeeper", Check: ok}, {Name: "redis", Check: ok}, {Name: "a", Check: ok}},
			wantStatus: 200, wantBody: `{"status":"ok","checks":{"zookeeper":"ok","redis":"ok","a":"ok"}}`},
		{name: "error text escaped once", checks: []Check{{Name: "pg", Check: func(context.Context) error {
			return errors.New(`bad "quote" <tag>` + "\n")
		}}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"pg":"bad \"quote\" <tag>\n"}}`},
		{name: "timed out", checks: []Check{{Name: "slow", Check: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"slow":"timed out after 20ms"}}`},
		{name: "nil after the deadline is a timeout", checks: []Check{{Name: "late", Check: func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		}}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"late":"timed out after 20ms"}}`},
		{name: "a check that degrades fails without 503", checks: []Check{{Name: "zookeeper", Degrades: true, Check: func(context.Context) error {
			return errors.New("zk: not connected")
		}}, {Name: "redis", Check: ok}},
			wantStatus: 200, wantBody: `{"status":"degraded","checks":{"zookeeper":"zk: not connected","redis":"ok"}}`},
		{name: "a hard failure wins over a degraded one", checks: []Check{{Name: "zookeeper", Degrades: true, Check: func(context.Context) error {
			return errors.New("down")
		}}, {Name: "redis", Check: func(context.Context) error { return errors.New("down") }}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"zookeeper":"down","redis":"down"}}`},
		{name: "panic is a failed check", checks: []Check{{Name: "bad", Check: func(context.Context) error { panic("boom") }}, {Name: "good", Check: ok}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"bad":"health: check bad panicked: boom","good":"ok"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.checks, 20*time.Millisecond, nil)
			if err != nil {
				t.Fatal(err)
			}
			status, body := c.Ready(context.Background())
			if status != tt.wantStatus || string(body) != tt.wantBody {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestRunChecksConcurrently(t *testing.T) {
	// Two checks that each wait for the other to start: they pass only when run at
	// the same time.
	var wg sync.WaitGroup
	wg.Add(2)
	both := make(chan struct{})
	go func() { wg.Wait(); close(both) }()
	check := func(ctx context.Context) error {
		wg.Done()
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return errors.New("not concurrent")
		}
	}
	c, err := New([]Check{{Name: "a", Check: check}, {Name: "b", Check: check}}, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := c.Ready(context.Background()); status != 200 {
		t.Fatalf("got %d %s", status, body)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) error { <-release; return nil } // ignores ctx
	c, err := New([]Check{{Name: "stuck", Check: stuck}}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if status, body := c.Ready(ctx); status != 503 || string(body) != `{"status":"fail","checks":{"stuck":"context canceled"}}` {
		t.Fatalf("got %d %s", status, body)
	}
}

func TestHandlers(t *testing.T) {
	c, err := New([]Check{
		{Name: "node", Live: true, Check: func(context.Context) error { return nil }},
		{Name: "bad", Check: func(context.Context) error { panic("boom") }},
	}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", c.LiveHandler())
	mux.Handle("GET /readyz", c.ReadyHandler())
	hs := httptest.NewServer(mux)
	defer hs.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/readyz", 503, `{"status":"fail","checks":{"node":"ok","bad":"health: check bad panicked: boom"}}`},
		{"HEAD", "/readyz", 503, ""},
		{"GET", "/healthz", 200, `{"status":"ok","checks":{"node":"ok"}}`},
		{"HEAD", "/healthz", 200, ""},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (a panicking check must not take the server down)", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.body || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d %q %q", tc.method, tc.path, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	}
}

// TestLive: /healthz runs only the Live checks, so a dependency's outage (ZooKeeper,
// the broker) leaves it 200, while a node that stops serving fails it.
func TestLive(t *testing.T) {
	var ran sync.Map
	dep := func(name string) Check {
		return Check{Name: name, Check: func(context.Context) error { ran.Store(name, true); return errors.New("down") }}
	}
	draining := false
	c, err := New([]Check{
		{Name: "node", Live: true, Check: func(context.Context) error {
			if draining {
				return errors.New("draining")
			}
			return nil
		}},
		dep("rabbitmq"), {Name: "zookeeper", Degrades: true, Check: dep("zookeeper").Check},
	}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, body := c.Live(context.Background()); st != 200 || string(body) != `{"status":"ok","checks":{"node":"ok"}}` {
		t.Fatalf("live with the dependencies down: %d %s", st, body)
	}
	if _, ok := ran.Load("rabbitmq"); ok {
		t.Fatal("Live ran a dependency check")
	}
	if st, body := c.Ready(context.Background()); st != 503 || string(body) != `{"status":"fail","checks":{"node":"ok","rabbitmq":"down","zookeeper":"down"}}` {
		t.Fatalf("ready with the dependencies down: %d %s", st, body)
	}
	draining = true
	if st, body := c.Live(context.Background()); st != 503 || string(body) != `{"status":"fail","checks":{"node":"draining"}}` {
		t.Fatalf("live while draining: %d %s", st, body)
	}
}

func TestNewRefuses(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name    string
		checks  []Check
		timeout time.Duration
		wantErr string
	}{
		{name: "unnamed", checks: []Check{{Check: ok}}, wantErr: "health: check 0 needs a Name and a Check"},
		{name: "nil func", checks: []Check{{Name: "zk"}}, wantErr: "health: check 0 needs a Name and a Check"},
		{name: "duplicate", checks: []Check{{Name: "zk", Check: ok}, {Name: "zk", Check: ok}}, wantErr: `health: duplicate check "zk"`},
		{name: "negative timeout", timeout: -1, wantErr: "health: negative timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.checks, tt.timeout, nil); err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("New() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
