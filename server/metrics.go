package server

import (
	"sync/atomic"
	"time"

	"imgate/codec"
)

// The node's figures beyond Stats' counters: ERROR answers by code, binds, the bytes
// waiting in the loop queues and the latency of a message from its accept to its ACK.
// Everything is an atomic updated where the event happens, so the hot path pays an
// atomic add (and one clock read per ACK) and a scrape reads without a lock.

// errorCodes are the ERROR codes the node answers, in the order of counters.errors.
var errorCodes = [...]string{
	codec.CodeBadJSON, codec.CodeBadType, codec.CodeBadRequest,
	codec.CodeForbidden, codec.CodeUnavailable, codec.CodeRateLimited,
}

// errorIndex is the index of code in errorCodes; len(errorCodes) for another code.
func errorIndex(code string) int {
	for i, c := range errorCodes {
		if c == code {
			return i
		}
	}
	return len(errorCodes)
}

// countError counts one ERROR answer with code.
func (s *Server) countError(code string) {
	if i := errorIndex(code); i < len(errorCodes) {
		s.stats.errors[i].Add(1)
	}
}

// LatencyBounds are the upper bounds, in seconds, of the buckets of the node's latency
// histograms (Stats().Persisted, Stats().Written).
var LatencyBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// histogram counts durations in the buckets of LatencyBounds (and one above them).
// Safe for concurrent use; observe is two atomic adds.
type histogram struct {
	buckets [len(LatencyBounds) + 1]atomic.Uint64
	sumNs   atomic.Int64
}

// latencyBoundsNs are LatencyBounds as durations, for observe.
var latencyBoundsNs = func() (b [len(LatencyBounds)]time.Duration) {
	for i, s := range LatencyBounds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(latencyBoundsNs) && d > latencyBoundsNs[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(int64(d))
}

// Histogram is a snapshot of a latency histogram in Prometheus' shape.
type Histogram struct {
	// Count is the number of observations, Sum their total in seconds.
	Count uint64
	Sum   float64
	// Buckets maps each bound of LatencyBounds to the observations at or below it
	// (cumulative).
	Buckets map[float64]uint64
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(LatencyBounds))}
	for i := range h.buckets {
		out.Count += h.buckets[i].Load()
		if i < len(LatencyBounds) {
			out.Buckets[LatencyBounds[i]] = out.Count
		}
	}
	out.Sum = time.Duration(h.sumNs.Load()).Seconds()
	return out
}

// acceptStamp is the accept time of a message as the uint32 its ACK task carries: its
// chatTime in Unix milliseconds modulo 2^32 (differences stay right for 49 days), 0
// moved to 1 (0 marks a task that is not an ACK).
func acceptStamp(chatTime time.Time) uint32 {
	return max(uint32(chatTime.UnixMilli()), 1)
}

// sinceStamp is the time from the accept stamped as st until now. chatTime is the
// accept time truncated to the millisecond, so this reads up to 1 ms high.
func sinceStamp(st uint32, now time.Time) time.Duration {
	ns := now.UnixNano()
	ms := uint32(ns / 1e6)
	return time.Duration(ms-st)*time.Millisecond + time.Duration(ns%1e6)
}
