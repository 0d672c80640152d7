package server

import (
	"testing"
	"time"
	"unsafe"
)

// TestTaskSize keeps a loop task at 48 bytes: the ACK's accept stamp lives in what was
// padding, so the latency histogram costs the loop queues nothing.
func TestTaskSize(t *testing.T) {
	if n := unsafe.Sizeof(task{}); n != 48 {
		t.Fatalf("task is %d bytes, want 48", n)
	}
}

// TestSinceStamp checks the accept stamp across the 2^32 ms wrap and the histogram's
// buckets.
func TestSinceStamp(t *testing.T) {
	accept := time.UnixMilli(1<<32 - 3) // three ms before the stamp wraps
	now := accept.Add(7*time.Millisecond + 250*time.Microsecond)
	if got := sinceStamp(acceptStamp(accept), now); got != 7*time.Millisecond+250*time.Microsecond {
		t.Fatalf("sinceStamp across the wrap: %v", got)
	}
	var h histogram
	h.observe(300 * time.Microsecond)
	h.observe(3 * time.Millisecond)
	h.observe(time.Minute)
	s := h.snapshot()
	if s.Count != 3 || s.Buckets[.0005] != 1 || s.Buckets[.005] != 2 || s.Buckets[10] != 2 {
		t.Fatalf("snapshot %+v", s)
	}
}

// BenchmarkAckMetrics is what the metrics add to one ACK on the hot path: the two
// observations and the stamp (the clock is read once per batch of ACKs, not per ACK).
func BenchmarkAckMetrics(b *testing.B) {
	var h, w histogram
	chat := time.UnixMilli(time.Now().UnixMilli())
	now := chat.Add(3 * time.Millisecond)
	for b.Loop() {
		h.observe(now.Sub(chat))
		st := acceptStamp(chat)
		w.observe(sinceStamp(st, now))
	}
}
