package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func oracle(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func logUniform(r *rand.Rand, lo, hi float64) int64 {
	return int64(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
}

func TestHistogramQuantilesMatchOracle(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		lo, hi float64
	}{
		{name: "1us..60s", n: 200000, lo: 1e3, hi: 60e9},
		{name: "narrow 100us..2ms", n: 50000, lo: 1e5, hi: 2e6},
		{name: "small values", n: 1000, lo: 1, hi: 500},
		{name: "single", n: 1, lo: 5e6, hi: 5e6 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.n)))
			var h Histogram
			vals := make([]int64, tc.n)
			for i := range vals {
				vals[i] = logUniform(r, tc.lo, tc.hi)
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			if h.Count() != uint64(tc.n) {
				t.Fatalf("count %d, want %d", h.Count(), tc.n)
			}
			if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
				t.Fatalf("min/max %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				got, want := float64(h.Quantile(q)), float64(oracle(vals, q))
				if want >= 1000 && math.Abs(got-want)/want > 0.01 {
					t.Errorf("q%.3f = %.0f, oracle %.0f: off by %.2f%%", q, got, want, 100*math.Abs(got-want)/want)
				}
				if want < 1000 && math.Abs(got-want) > 10 {
					t.Errorf("q%.3f = %.0f, oracle %.0f", q, got, want)
				}
			}
		})
	}
}

func TestHistogramBucketsCoverRange(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d] maps back to %d,%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-9 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d", i, lo, hi, subCount)
		}
		prevHi = hi
		if hi >= maxTrackable {
			return
		}
	}
	t.Fatalf("buckets end at %d, before %d", prevHi, maxTrackable)
}

func TestHistogramMergeAndSparse(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var a, b, all Histogram
	for i := 0; i < 30000; i++ {
		v := logUniform(r, 1e3, 1e10)
		all.Record(time.Duration(v))
		if i%3 == 0 {
			a.Record(time.Duration(v))
		} else {
			b.Record(time.Duration(v))
		}
	}
	merged := FromSparse(a.Snapshot())
	merged.Merge(&b)
	if merged.Count() != all.Count() || merged.Max() != all.Max() || merged.Min() != all.Min() || merged.Mean() != all.Mean() {
		t.Fatalf("merged count/min/max/mean %d/%v/%v/%v, want %d/%v/%v/%v",
			merged.Count(), merged.Min(), merged.Max(), merged.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, direct %v", q, merged.Quantile(q), all.Quantile(q))
		}
	}
	// Diff of two snapshots holds exactly the values recorded in between.
	before := a.Snapshot()
	var extra Histogram
	for i := 0; i < 100; i++ {
		a.Record(5 * time.Millisecond)
		extra.Record(5 * time.Millisecond)
	}
	d := FromSparse(a.Snapshot().Diff(before))
	if got, want := d.Quantile(0.5), extra.Quantile(0.5); d.Count() != 100 || math.Abs(float64(got-want))/float64(want) > 0.01 {
		t.Fatalf("diff count %d p50 %v, want 100 %v", d.Count(), d.Quantile(0.5), extra.Quantile(0.5))
	}
}

func TestHistogramClampsOutOfRange(t *testing.T) {
	var h Histogram
	h.Record(-5)
	h.Record(10 * time.Minute)
	if h.Count() != 2 || h.Max() != 10*time.Minute || h.Quantile(1) != 10*time.Minute || h.Quantile(0) != 0 {
		t.Fatalf("count %d max %v q1 %v q0 %v", h.Count(), h.Max(), h.Quantile(1), h.Quantile(0))
	}
}
