package bus

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"imgate/cluster/rabbit"
	"imgate/message"
)

// TestSplitDropsOnlyThePoisonRecord: record by record, the ones the store takes are kept
// in order with their Saved, the one it keeps refusing is dropped; when nothing succeeds
// (the store is down) the batch stays whole and the error is returned.
func TestSplitDropsOnlyThePoisonRecord(t *testing.T) {
	recs := []message.Record{busRecord(1, "a", "b", "n"), busRecord(2, "a", "b", "n"), busRecord(3, "a", "b", "n")}
	poison := errors.New("index row size exceeds btree maximum")
	c := &SaveConsumer{cfg: Config{Config: rabbit.Config{Logger: slog.New(slog.DiscardHandler)}}, ctx: context.Background()}
	c.handle = func(_ context.Context, rs []message.Record, _ func()) ([]message.Saved, error) {
		out := make([]message.Saved, 0, len(rs))
		for _, r := range rs {
			if r.Msg.MsgID == 2 {
				return nil, poison
			}
			out = append(out, message.Saved{Record: r, ReceiverSeq: r.Msg.MsgID})
		}
		return out, nil
	}
	kept, saved, err := c.split(recs, func() {})
	if err != nil || len(kept) != 2 || len(saved) != 2 {
		t.Fatalf("split: kept %d saved %d err %v", len(kept), len(saved), err)
	}
	for i, want := range []int64{1, 3} {
		if kept[i].Msg.MsgID != want || saved[i].Msg.MsgID != want {
			t.Fatalf("position %d: kept %d saved %d, want %d", i, kept[i].Msg.MsgID, saved[i].Msg.MsgID, want)
		}
	}

	down := errors.New("connection refused")
	c.handle = func(context.Context, []message.Record, func()) ([]message.Saved, error) { return nil, down }
	kept, saved, err = c.split(recs, func() {})
	if !errors.Is(err, down) || len(kept) != 3 || saved != nil {
		t.Fatalf("store down: kept %d saved %v err %v; want the whole batch back and the error", len(kept), saved, err)
	}
}
