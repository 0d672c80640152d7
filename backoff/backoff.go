// Package backoff computes retry delays: capped exponential growth with random jitter,
// the one policy imgate uses wherever it retries something remote (the RabbitMQ
// reconnect in cluster/rabbit, the saver's failed commits, the webhook's POSTs).
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before attempt n (n >= 1): exponential from lo, capped at hi,
// with up to 50% random jitter subtracted so that many clients that failed together do
// not retry together.
func Delay(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}
