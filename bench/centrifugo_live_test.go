//go:build peers

package bench

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestCentrifugoLive drives a real Centrifugo installed by scripts/peers.sh:
//
//	scripts/peers.sh && go test -tags peers -run TestCentrifugoLive ./bench/
func TestCentrifugoLive(t *testing.T) {
	dir := os.Getenv("IMGATE_PEERS_DIR")
	if dir == "" {
		dir = "/var/tmp/imgate-peers"
	}
	bin := filepath.Join(dir, "bin", "centrifugo")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("centrifugo not installed: run scripts/peers.sh (%v)", err)
	}
	port := freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	conf := `{"http_server":{"address":"127.0.0.1","port":` + port + `},"log":{"level":"error"},
"client":{"token":{"hmac_secret_key":"test-secret"}},"usage_stats":{"disabled":true},
"channel":{"namespaces":[{"name":"personal","allow_subscribe_for_client":true,"allow_publish_for_client":true},
{"name":"group","allow_subscribe_for_client":true,"allow_publish_for_client":true}]}}`
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config", cfgFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	cfg := DefaultConfig()
	cfg.Protocol = ProtocolCentrifugo
	cfg.CentSecret = "test-secret"
	cfg.URLs = []string{"ws://127.0.0.1:" + port + "/connection/websocket"}
	cfg.Scenario = ScenarioDevices
	cfg.Users, cfg.Devices = 10, 3
	cfg.Rate = 500
	cfg.Duration = time.Second
	cfg.RateConnect = 0
	cfg.Timeout = 40 * time.Second
	if !waitFor(context.Background(), 10*time.Second, func() bool { return dialable("127.0.0.1:" + port) }) {
		t.Fatal("centrifugo did not listen")
	}
	rep := runOK(t, cfg)
	checkNoLoss(t, rep)
	if a := rep.Audit; a.Expected != 5*a.Acked {
		t.Errorf("expected pairs %d, want 5 × %d acked", a.Expected, a.Acked)
	}
	if rep.Conns.Bound != 30 || rep.Conns.ClosedClean != 30 {
		t.Errorf("conns %+v", rep.Conns)
	}

	// groups: 2 channels of 5 members × 2 devices; each publication reaches the 9 other
	// subscribed connections (Centrifugo's echo to the publisher is not counted).
	cfg.Scenario, cfg.Groups, cfg.GroupSize, cfg.Devices = ScenarioGroups, 2, 5, 2
	cfg.Users, cfg.Rate, cfg.UserPrefix = 10, 100, "centgroups"
	rep = runOK(t, cfg)
	checkNoLoss(t, rep)
	if a := rep.Audit; a.Expected != 9*a.Acked || a.LossyDevices != 0 || rep.Messages.Misrouted != 0 {
		t.Errorf("groups: audit %+v, misrouted %d; want 9 pairs per message", a, rep.Messages.Misrouted)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
