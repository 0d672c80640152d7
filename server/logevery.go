package server

import (
	"sync/atomic"
	"time"
)

// logEvery lets a log line through at most once per interval: a failure that hits
// every connection (a Redis outage during a reconnect storm) is said once, not by the
// thousand. Safe for concurrent use; the zero interval lets everything through.
type logEvery struct {
	interval time.Duration
	next     atomic.Int64 // Unix ns before which Allow says no
}

// Allow reports whether a line may be logged now.
func (l *logEvery) Allow() bool {
	now := time.Now().UnixNano()
	n := l.next.Load()
	return now >= n && l.next.CompareAndSwap(n, now+int64(l.interval))
}
