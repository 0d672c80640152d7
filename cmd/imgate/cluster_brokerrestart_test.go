//go:build brokerrestart

package main

// This test stops and starts the shared RabbitMQ: run it alone, after the other tests
// (make test runs it in a separate sequential step):
//
//	go test -race -tags brokerrestart -run TestClusterBrokerRestart ./cmd/imgate/

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// rabbitmqctl runs rabbitmqctl with args, bounded by 60 s.
func rabbitmqctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestClusterBrokerRestart runs the broker outage scenario with the real broker:
// rabbitmqctl stop_app, then start_app and await_startup.
func TestClusterBrokerRestart(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	if out, err := rabbitmqctl("await_startup"); err != nil {
		t.Fatalf("rabbitmqctl await_startup: %v: %s (run scripts/services.sh up)", err, out)
	}
	started := true
	start := func() {
		if out, err := rabbitmqctl("start_app"); err != nil {
			t.Errorf("rabbitmqctl start_app: %v: %s", err, out)
		}
		if out, err := rabbitmqctl("await_startup"); err != nil {
			t.Errorf("rabbitmqctl await_startup: %v: %s", err, out)
		}
		started = true
	}
	// Registered after the cluster's cleanup, so it runs first: the broker is back before
	// the namespace's queues and exchanges are deleted.
	t.Cleanup(func() {
		if !started {
			start()
		}
	})
	brokerOutage(t, c, func() {
		started = false
		if out, err := rabbitmqctl("stop_app"); err != nil {
			t.Errorf("rabbitmqctl stop_app: %v: %s", err, out)
		}
	}, start)
}
