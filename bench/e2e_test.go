package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imgate/bench/baseline"
)

// TestMain doubles as the worker entry point: --procs re-executes this test binary with
// WorkerEnv set, and the worker runs instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) == "1" {
		os.Exit(Main(context.Background(), []string{"--worker"}, os.Stdout, os.Stderr))
	}
	// gnet's default goroutine pool (ants) lives for the process once a server ran in it
	// (TestProfileServer).
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

func startBaseline(t *testing.T) *baseline.Server {
	t.Helper()
	s, err := baseline.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testConfig(s *baseline.Server, scenario string, users int) Config {
	cfg := DefaultConfig()
	cfg.URLs = []string{s.URL()}
	cfg.Scenario = scenario
	cfg.Users = users
	cfg.Duration = 2 * time.Second
	cfg.Grace = 5 * time.Second
	cfg.RateConnect = 0
	cfg.Seed = 42
	cfg.UserPrefix = strings.ReplaceAll(scenario, "-", "")
	cfg.Timeout = 40 * time.Second
	return cfg
}

func runOK(t *testing.T, cfg Config) *Report {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, []int{os.Getpid()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TimedOut {
		t.Fatal("run timed out")
	}
	if len(rep.Errors) > 0 || len(rep.CloseCodes) > 0 {
		t.Errorf("errors %v, close codes %v", rep.Errors, rep.CloseCodes)
	}
	return rep
}

func checkNoLoss(t *testing.T, rep *Report) {
	t.Helper()
	a := rep.Audit
	if rep.Messages.Sent == 0 || rep.Messages.Acked != rep.Messages.Sent || a.Acked != rep.Messages.Acked {
		t.Errorf("sent %d acked %d audit acked %d", rep.Messages.Sent, rep.Messages.Acked, a.Acked)
	}
	if a.Lost != 0 || a.Duplicated != 0 || a.Unexpected != 0 || a.Expected == 0 || a.Delivered != a.Expected {
		t.Errorf("audit %+v", a)
	}
	if rep.Latency.Ack.Count != rep.Messages.Acked || rep.Latency.Delivery.Count != rep.Messages.Delivered {
		t.Errorf("latency counts ack %d delivery %d, want %d %d",
			rep.Latency.Ack.Count, rep.Latency.Delivery.Count, rep.Messages.Acked, rep.Messages.Delivered)
	}
	if rep.Latency.Ack.P50 <= 0 || rep.Latency.Ack.P99 < rep.Latency.Ack.P50 || rep.Latency.Ack.Max < rep.Latency.Ack.P999 {
		t.Errorf("ack latency %+v", rep.Latency.Ack)
	}
}

func TestScenarioIdle(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioIdle, 50)
	cfg.Keepalive = time.Second
	rep := runOK(t, cfg)
	if rep.Conns.Bound != 50 || rep.Conns.Live != 50 || rep.Conns.ClosedClean != 50 {
		t.Fatalf("conns %+v", rep.Conns)
	}
	if rep.Messages.Keepalives == 0 {
		t.Error("no KEEPALIVE answered")
	}
	if rep.Latency.Init.Count != 50 || rep.Latency.Connect.Count != 50 {
		t.Errorf("init %d connect %d", rep.Latency.Init.Count, rep.Latency.Connect.Count)
	}
	if len(rep.Server) != 1 || rep.Server[0].SteadyKB <= 0 || rep.Server[0].Conns != 50 {
		t.Errorf("server RSS %+v", rep.Server)
	}
}

func TestScenarioIdlePing(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioIdle, 20)
	cfg.Keepalive = time.Second
	cfg.KeepaliveKind = "ping"
	rep := runOK(t, cfg)
	if rep.Conns.Bound != 20 || rep.Conns.ClosedClean != 20 {
		t.Fatalf("conns %+v", rep.Conns)
	}
}

func TestScenarioP2PWindowed(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioP2P, 50)
	cfg.Rate = 0
	cfg.Inflight = 2
	rep := runOK(t, cfg)
	checkNoLoss(t, rep)
	if rep.Conns.Bound != 50 {
		t.Fatalf("conns %+v", rep.Conns)
	}
}

func TestScenarioP2PRateAndBound(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioP2P, 50)
	cfg.Rate = 2000
	cfg.Messages = 1000
	cfg.Duration = 10 * time.Second // the message bound ends the run first
	rep := runOK(t, cfg)
	checkNoLoss(t, rep)
	if rep.Messages.Sent != 1000 {
		t.Fatalf("sent %d, want 1000", rep.Messages.Sent)
	}
}

func TestScenarioDevices(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioDevices, 20)
	cfg.Devices = 3
	cfg.Rate = 1000
	rep := runOK(t, cfg)
	checkNoLoss(t, rep)
	// Each message reaches the receiver's 3 devices and the sender's 2 other devices.
	if a := rep.Audit; a.Expected != 5*a.Acked {
		t.Errorf("expected pairs %d, want 5 × %d acked", a.Expected, a.Acked)
	}
	if d := rep.PerDevice; d.Devices != 60 || d.Sum != rep.Messages.Delivered || d.Min == 0 {
		t.Errorf("per device %+v, delivered %d", d, rep.Messages.Delivered)
	}
}

func TestScenarioChurn(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioChurn, 10)
	cfg.Rate = 200
	cfg.Messages = 150
	rep := runOK(t, cfg)
	if rep.Messages.Cycles != 150 || rep.Conns.Bound != 150 || rep.Conns.ClosedClean != 150 || rep.Latency.Init.Count != 150 {
		t.Fatalf("cycles %d conns %+v", rep.Messages.Cycles, rep.Conns)
	}
}

func TestDispatcherAndProcs(t *testing.T) {
	s := startBaseline(t)
	cfg := testConfig(s, ScenarioDevices, 20)
	cfg.URLs = nil
	cfg.Dispatcher = "http://" + s.Addr().String()
	cfg.Devices = 2
	cfg.Procs = 2
	cfg.Rate = 0
	cfg.Inflight = 2
	rep := runOK(t, cfg)
	checkNoLoss(t, rep)
	if rep.Conns.Bound != 40 || rep.PerDevice.Devices != 40 {
		t.Fatalf("conns %+v per device %+v", rep.Conns, rep.PerDevice)
	}
	if rep.GenRSSKB <= 0 {
		t.Errorf("generator RSS %d", rep.GenRSSKB)
	}
	// Both worker processes' CPU, summed: each used some to dial and send.
	if rep.GenCPUSeconds <= 0 || rep.GenCPUPerConn <= 0 {
		t.Errorf("generator CPU %.3f s, %.0f µs per connection attempt; want both positive", rep.GenCPUSeconds, rep.GenCPUPerConn)
	}
}

func TestMainJSON(t *testing.T) {
	s := startBaseline(t)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--url", s.URL(), "--scenario", "p2p", "--conns", "10",
		"--duration", "1s", "--rate", "200/s", "--grace", "3s", "--json", "--quiet", "--user-prefix", "mainjson"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Scenario != "p2p" || rep.Audit.Lost != 0 || rep.Messages.Acked == 0 {
		t.Fatalf("report %+v", rep)
	}
}

func TestMainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "p2p"},                                            // no target
		{"--url", "http://x/ws"},                                         // wrong scheme
		{"--url", "ws://127.0.0.1:1/ws", "--scenario", "nope"},           // unknown scenario
		{"--url", "ws://127.0.0.1:1/ws", "--conns", "40000"},             // too many per process
		{"--url", "ws://127.0.0.1:1/ws", "--src-ips", "1.2.3.9-1.2.3.1"}, // bad range
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}
