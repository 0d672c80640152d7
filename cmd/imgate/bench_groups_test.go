package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgate/bench"
)

// runBench runs `imgate bench ARGS --json --quiet` with the server API key in its
// environment and returns its exit code and report.
func runBench(t *testing.T, key string, args ...string) (int, bench.Report, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"bench", "--json", "--quiet"}, args...)...) //nolint:gosec // G204: the binary under test
	cmd.Env = append(cmd.Environ(), "IMGATE_API_KEY="+key)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	var rep bench.Report
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("report %q: %v", out.String(), err)
		}
	}
	return code, rep, errb.String()
}

// TestBenchGroupsScenario runs `imgate bench --scenario groups` against a real standalone
// with a SQLite store: groups created through the server API, every member device gets
// every ACKed group message exactly once, in one process and split over two.
func TestBenchGroupsScenario(t *testing.T) {
	const key = "bench-groups-key-0123456789"
	t.Setenv("IMGATE_API_KEY", key)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "sqlite",
		"--data-dir", t.TempDir(), "--rate-limit", "0")
	for _, tc := range []struct {
		name                         string
		groups, size, devices, procs int
	}{
		{"one process", 2, 6, 2, 1},
		{"two processes", 2, 5, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "bg" + strings.ReplaceAll(tc.name, " ", "")
			code, rep, stderr := runBench(t, key, "--scenario", "groups", "--url", p.WS, "--api", p.HTTP,
				"--groups", strconv.Itoa(tc.groups), "--group-size", strconv.Itoa(tc.size), "--devices", strconv.Itoa(tc.devices),
				"--procs", strconv.Itoa(tc.procs), "--rate", "40", "--duration", "1s", "--grace", "10s", "--user-prefix", prefix)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			a := rep.Audit
			// Each message reaches the other devices of its group: size × devices − 1.
			perMsg := uint64(tc.size*tc.devices - 1)
			if rep.Scenario != bench.ScenarioGroups || rep.Groups != tc.groups || rep.GroupSize != tc.size || rep.Conns.Bound != int64(tc.groups*tc.size*tc.devices) {
				t.Fatalf("report %+v", rep)
			}
			if rep.Messages.Sent == 0 || rep.Messages.Acked != rep.Messages.Sent || a.Acked != rep.Messages.Acked {
				t.Fatalf("sent %d acked %d audit %+v errors %v", rep.Messages.Sent, rep.Messages.Acked, a, rep.Errors)
			}
			if a.Expected != perMsg*a.Acked || a.Delivered != a.Expected || a.Lost != 0 || a.Duplicated != 0 || a.Unexpected != 0 || a.LossyDevices != 0 {
				t.Fatalf("audit %+v, want %d pairs per message", a, perMsg)
			}
			if rep.Messages.Delivered != a.Delivered || rep.Messages.Misrouted != 0 || rep.Messages.Foreign != 0 || rep.Latency.Delivery.Count != a.Delivered {
				t.Fatalf("messages %+v, delivery latency count %d", rep.Messages, rep.Latency.Delivery.Count)
			}
		})
	}

	// A wrong key: the groups cannot be created, nothing is sent, exit 1.
	code, rep, _ := runBench(t, "wrong-key", "--scenario", "groups", "--url", p.WS, "--api", p.HTTP,
		"--groups", "1", "--group-size", "3", "--rate", "10", "--duration", "1s", "--user-prefix", "bgwrongkey")
	if code != 1 || !rep.SetupFailed || rep.Messages.Sent != 0 {
		t.Fatalf("wrong key: exit %d, setupFailed %v, sent %d, errors %v", code, rep.SetupFailed, rep.Messages.Sent, rep.Errors)
	}
}
