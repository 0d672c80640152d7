package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values are nanoseconds. Values below 2^subBits are counted exactly; above,
// each power-of-two range [2^(subBits+e), 2^(subBits+e+1)) is split into 2^subBits equal
// buckets, so a bucket is at most 1/128 (0.78%) of its values wide and the reported midpoint is
// within 0.4% of every value in it. The top range ends past maxTrackable (~68.7 s); larger values
// land in the last bucket, and the exact maximum is kept on the side.
const (
	subBits      = 7
	subCount     = 1 << subBits
	maxTrackable = int64(60 * time.Second)
	// maxExp is the exponent group of maxTrackable: floor(log2(60e9)) - subBits = 35 - 7.
	maxExp     = 28
	numBuckets = (maxExp + 2) * subCount
)

// Histogram is an HDR-style log-linear histogram of durations in nanoseconds, about 1 ns to
// 60 s, precise to 1%. Record may be called from any goroutine (atomic adds, no locks); Merge,
// Snapshot and the readers may run concurrently with Record and see a recent state.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Int64
	min    atomic.Int64 // valid when total > 0; stored as value+1 so 0 means unset
	max    atomic.Int64
}

func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v > maxTrackable {
		v = maxTrackable
	}
	e := bits.Len64(uint64(v)) - 1 - subBits // v in [2^(subBits+e), 2^(subBits+e+1))
	return (e+1)*subCount + int(v>>uint(e)) - subCount
}

// bucketRange returns the smallest and largest value counted in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := uint(i/subCount - 1)
	sub := int64(i%subCount + subCount)
	return sub << e, (sub+1)<<e - 1
}

// Record adds one value (negative values count as 0).
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.min.Load()
		if m != 0 && m-1 <= v {
			break
		}
		if h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
	for {
		m := h.max.Load()
		if m >= v || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded value (exact), 0 when empty.
func (h *Histogram) Min() time.Duration {
	m := h.min.Load()
	if m == 0 {
		return 0
	}
	return time.Duration(m - 1)
}

// Mean returns the arithmetic mean, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the value at rank ceil(q*count) (nearest rank, q in [0,1]): the midpoint of
// its bucket, clamped to the exact min and max. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.Max()
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			if mx := h.max.Load(); v > mx {
				v = mx
			}
			if mn := h.Min(); v < int64(mn) {
				v = int64(mn)
			}
			return time.Duration(v)
		}
	}
	return h.Max()
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	h.mergeSparse(o.Snapshot())
}

// Sparse is the serialisable form of a Histogram: non-empty buckets as [index, count] pairs.
type Sparse struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	Sum     int64       `json:"sum,omitempty"`
	Min     int64       `json:"min,omitempty"`
	Max     int64       `json:"max,omitempty"`
}

// Snapshot returns the non-empty buckets of h.
func (h *Histogram) Snapshot() Sparse {
	s := Sparse{Sum: h.sum.Load(), Min: int64(h.Min()), Max: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return s
}

// Diff returns the values recorded in s since prev (prev an earlier snapshot of the same
// histogram). Min and Max of the result are bounded by its lowest and highest buckets.
func (s Sparse) Diff(prev Sparse) Sparse {
	out := Sparse{Sum: s.Sum - prev.Sum, Min: s.Min, Max: s.Max}
	defer func() {
		if len(out.Buckets) > 0 {
			lo, _ := bucketRange(int(out.Buckets[0][0]))
			_, hi := bucketRange(int(out.Buckets[len(out.Buckets)-1][0]))
			out.Min = max(out.Min, lo)
			if int(out.Buckets[len(out.Buckets)-1][0]) < bucketOf(maxTrackable) {
				out.Max = min(out.Max, hi)
			}
		}
	}()
	j := 0
	for _, b := range s.Buckets {
		for j < len(prev.Buckets) && prev.Buckets[j][0] < b[0] {
			j++
		}
		c := b[1]
		if j < len(prev.Buckets) && prev.Buckets[j][0] == b[0] {
			c -= prev.Buckets[j][1]
		}
		if c != 0 {
			out.Buckets = append(out.Buckets, [2]uint64{b[0], c})
		}
	}
	return out
}

// MergeSparse adds the values of s to h.
func (h *Histogram) mergeSparse(s Sparse) {
	var n uint64
	for _, b := range s.Buckets {
		if b[0] >= numBuckets {
			continue
		}
		h.counts[b[0]].Add(b[1])
		n += b[1]
	}
	if n == 0 {
		return
	}
	h.total.Add(n)
	h.sum.Add(s.Sum)
	for {
		m := h.min.Load()
		if m != 0 && m-1 <= s.Min {
			break
		}
		if h.min.CompareAndSwap(m, s.Min+1) {
			break
		}
	}
	for {
		m := h.max.Load()
		if m >= s.Max || h.max.CompareAndSwap(m, s.Max) {
			break
		}
	}
}

// FromSparse builds a Histogram from its serialised form.
func FromSparse(s Sparse) *Histogram {
	h := new(Histogram)
	h.mergeSparse(s)
	return h
}

// Summary is the reported view of a histogram: count and percentiles in microseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"minUs"`
	Mean  float64 `json:"meanUs"`
	P50   float64 `json:"p50Us"`
	P90   float64 `json:"p90Us"`
	P99   float64 `json:"p99Us"`
	P999  float64 `json:"p999Us"`
	Max   float64 `json:"maxUs"`
}

func us(d time.Duration) float64 { return math.Round(float64(d)/10) / 100 }

// Summarize returns count, min, mean, p50, p90, p99, p99.9 and max of h.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.Count(), Min: us(h.Min()), Mean: us(h.Mean()),
		P50: us(h.Quantile(0.50)), P90: us(h.Quantile(0.90)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max()),
	}
}
