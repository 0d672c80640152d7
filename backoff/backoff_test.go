package backoff

import (
	"testing"
	"time"
)

func TestDelayGrowsAndCaps(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, time.Second
	cases := []struct {
		n        int
		min, max time.Duration
	}{
		{n: 1, min: lo / 2, max: lo},
		{n: 2, min: lo, max: 2 * lo},
		{n: 3, min: 2 * lo, max: 4 * lo},
		{n: 10, min: hi / 2, max: hi},
		{n: 1000, min: hi / 2, max: hi},
	}
	for _, tc := range cases {
		for range 100 {
			if d := Delay(tc.n, lo, hi); d < tc.min || d > tc.max {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}
