package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/message"
)

// TestSaveQueueDepth: while the saver's handler holds the one delivery its prefetch
// allows, the other batches wait ready in the save queue and SaveQueueDepth reads them.
func TestSaveQueueDepth(t *testing.T) {
	cfg, _ := busTestConfig(t)
	cfg.SavePrefetch, cfg.SaveBatch = 1, 1
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	saver := busSaver(t, cfg, func(ctx context.Context, _ []message.Record, _ func()) ([]message.Saved, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("released")
	})
	t.Cleanup(func() { close(release) })
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	const n = 5
	for i := range n {
		body := wire.Encode(wire.Records, []message.Saved{{Record: busRecord(int64(9100+i), "a", "b", "n")}})
		if err := ch.Publish(cfg.SaveExchange, cfg.SaveKey, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was never called")
	}
	busWaitFor(t, 10*time.Second, "four batches ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d, err := saver.SaveQueueDepth(ctx)
		return err == nil && d == n-1
	})
}
