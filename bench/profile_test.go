//go:build profile

package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"imgate/server"
)

// TestProfileServer runs imgate's node in this process (server.New without an outbox, as
// `imgate standalone --store none`) under the generator, and writes a CPU profile of the p2p
// scenario and a heap profile with idle bound connections in one command, under a load it
// scripts itself (a running imgate serves the same profiles at --pprof-addr).
// It is built only with the profile tag and writes to IMGATE_PROFILE_DIR:
//
//	IMGATE_PROFILE_DIR=var/profile go test -tags profile -run TestProfileServer -count=1 -timeout 10m ./bench/
//	go tool pprof -top -focus 'imgate/server|imgate/codec|gnet' var/profile/cpu.pprof
//
// IMGATE_PROFILE_CONNS (default 1000) sets the p2p connections, IMGATE_PROFILE_IDLE (default
// 10000) the idle ones, IMGATE_PROFILE_SECONDS (default 10) the p2p time. The generator shares
// the process: focus the CPU profile on server, codec and gnet frames.
func TestProfileServer(t *testing.T) {
	dir := os.Getenv("IMGATE_PROFILE_DIR")
	if dir == "" {
		t.Fatal("set IMGATE_PROFILE_DIR to the directory for the profiles")
	}
	envInt := func(k string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
			return v
		}
		return def
	}
	// Every allocation of 64 bytes or more is sampled: per-connection objects are small.
	defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
	runtime.MemProfileRate = 64
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The rate limit of the flags' defaults (the Config's zero is no limit).
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", EventLoops: 1, RateLimit: 200, RateBurst: 400}, server.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()
	url := "ws://" + srv.Addr().String() + "/ws"

	run := func(cfg Config) *Report {
		cfg.URLs = []string{url}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(ctx, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// CPU: closed-loop p2p.
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Users, cfg.Rate, cfg.Inflight = ScenarioP2P, envInt("IMGATE_PROFILE_CONNS", 1000), 0, 4
	cfg.Duration = time.Duration(envInt("IMGATE_PROFILE_SECONDS", 10)) * time.Second
	cfg.RateConnect, cfg.UserPrefix = 0, "prof"
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	rep := run(cfg)
	pprof.StopCPUProfile()
	_ = f.Close()
	t.Logf("p2p: acked %.0f/s, delivery p99 %.0fµs, lost %d", rep.Rates.Acked, rep.Latency.Delivery.P99, rep.Audit.Lost)

	// Heap: idle bound connections; the profile is written while they are held.
	idle := DefaultConfig()
	idle.Scenario, idle.Users, idle.RateConnect, idle.UserPrefix = ScenarioIdle, envInt("IMGATE_PROFILE_IDLE", 10000), 5000, "profidle"
	idle.Duration = 6 * time.Second
	done := make(chan *Report, 1)
	go func() { done <- run(idle) }()
	time.Sleep(time.Duration(float64(idle.Users)/idle.RateConnect*float64(time.Second)) + 3*time.Second)
	runtime.GC()
	hf, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(hf, 0); err != nil {
		t.Fatal(err)
	}
	_ = hf.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("idle: %d connections held, heap in use %d KiB (server and generator together)", idle.Users, ms.HeapInuse>>10)
	<-done
}
