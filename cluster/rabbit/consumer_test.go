package rabbit

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestConsumerBatchBounds: a batch takes what waits, up to Batch deliveries and up to
// BatchBytes of bodies (the delivery that crosses the bound included), never waiting.
func TestConsumerBatchBounds(t *testing.T) {
	for _, tc := range []struct {
		name         string
		batch, bytes int
		waiting      int
		want         []int // batch sizes
	}{
		{"deliveries", 4, 0, 10, []int{4, 4, 2}},
		{"bytes", 100, 250, 10, []int{3, 3, 3, 1}}, // 100-byte bodies: the third crosses 250
		{"both", 2, 250, 5, []int{2, 2, 1}},
		{"nothing waits", 8, 1000, 1, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Consumer{Batch: tc.batch, BatchBytes: tc.bytes}
			buf := make(chan amqp.Delivery, tc.waiting)
			for range tc.waiting {
				buf <- amqp.Delivery{Body: make([]byte, 100)}
			}
			var got []int
			for len(buf) > 0 {
				got = append(got, len(c.fill([]amqp.Delivery{<-buf}, buf)))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("batches %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("batches %v, want %v", got, tc.want)
				}
			}
		})
	}
}
