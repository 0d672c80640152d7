package bus

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestNodeBusSubmitBeforeStart: a bus that was not started refuses records as unavailable
// and is ready only once started; closing it unstarted is clean.
func TestNodeBusSubmitBeforeStart(t *testing.T) {
	b, err := NewNodeBus(Config{}, "imgate-test-unstarted")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(busRecord(1, "a", "b", "n")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Submit before Start = %v, want ErrUnavailable", err)
	}
	if err := b.Relay(busRecord(2, "a", "b", "n")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Relay before Start = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ready before Start = %v, want ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, ErrBusClosed) {
		t.Errorf("Ready after Close = %v, want ErrBusClosed", err)
	}
}
