package client

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with full jitter: the n-th delay in a row is
// uniform in [0, min(max, min·2^n)). Not safe for concurrent use (the Run goroutine's).
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next returns the next delay and counts the attempt.
func (b *backoff) next() time.Duration {
	ceil := b.min
	for i := 0; i < b.attempt && ceil < b.max; i++ {
		if ceil > b.max/2 {
			ceil = b.max
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	b.attempt++
	return rand.N(ceil) // #nosec G404 -- jitter, not a secret
}

// reset starts over after a connection that stayed up.
func (b *backoff) reset() { b.attempt = 0 }
