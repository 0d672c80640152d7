package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"imgate/codec"
	"imgate/webhook"
)

// benchEnqueue enqueues one 100-byte message per op into a Sender posting to a receiver
// that stalls (every worker blocked in its POST: the cost to the delivery path alone,
// with the full queue dropping its oldest) or answers 204 at once (the workers' POSTs
// share the CPUs with the loop).
func benchEnqueue(b *testing.B, stall bool) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if stall {
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)
	s, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	batch := entries("bob", 0, 1, 100)
	b.ReportAllocs()
	for b.Loop() {
		s.Enqueue(batch)
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.DroppedOverflow)/float64(st.Enqueued), "dropped/op")
	_ = closeSender(b, s, 0)
}

func BenchmarkEnqueueReceiverStalled(b *testing.B) { benchEnqueue(b, true) }
func BenchmarkEnqueueReceiverFast(b *testing.B)    { benchEnqueue(b, false) }

// BenchmarkEncodeOnly is the chatMsg encoding alone: the baseline of the same run.
func BenchmarkEncodeOnly(b *testing.B) {
	batch := entries("bob", 0, 1, 100)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = codec.AppendChatMsg(buf[:0], &batch[0].Msg)
	}
}
