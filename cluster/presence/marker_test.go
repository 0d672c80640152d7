package presence

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestPresenceRemoveNodeDeletesMarker: removing an identity leaves no key of it behind
// but its fence.
func TestPresenceRemoveNodeDeletesMarker(t *testing.T) {
	client, prefix := presenceTestRedis(t)
	p := presenceNew(t, client, prefix, "im-0000000007", 7, 0)
	p.Connected("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	marker := prefix + "node:im-0000000007:marker"
	clustertest.WaitFor(t, 5*time.Second, "the first resync to write the marker", func() bool {
		n, err := client.Exists(ctx, marker).Result()
		return err == nil && n == 1
	})
	if err := p.RemoveNode(ctx, "im-0000000007", 7); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, marker, prefix+"node:im-0000000007:users", prefix+"presence:alice").Result(); err != nil || n != 0 {
		t.Fatalf("%d keys of the removed identity left (err %v)", n, err)
	}
}

// logLines records the messages a logger was given.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

// TestPresenceRemovedRegistrationIsNotALoss: when this node's own registration is
// removed (it deregistered on shutdown, or a cleaner saw its znode go), its marker
// vanishes too; the periodic check must not take that for a Redis that lost its data
// (WARN and a resync that the fence then refuses), only note that it is fenced.
func TestPresenceRemovedRegistrationIsNotALoss(t *testing.T) {
	client, prefix := presenceTestRedis(t)
	logs := &logLines{}
	p, err := New(client, "im-0000000009", 9, Config{Prefix: prefix, FlushInterval: 5 * time.Millisecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	p.Connected("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveNode(ctx, "im-0000000009", 9); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 5*time.Second, "the tracker to notice it is fenced", func() bool { return errors.Is(p.State(), ErrFenced) })
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, m := range logs.msgs {
		if strings.HasPrefix(m, "WARN") {
			t.Errorf("logged %q after its own registration was removed", m)
		}
	}
}
