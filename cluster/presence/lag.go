package presence

import "time"

// lagClock follows the oldest presence change not yet written to Redis: a change
// waits in the dirty set (pending) until a flush takes it (writing), and goes back to
// pending when that write fails. Every method is called with Tracker.mu held.
type lagClock struct {
	pending int64 // Unix ns of the oldest change in the dirty set; 0: none
	writing int64 // Unix ns of the oldest change the flush in progress writes; 0: none
}

// changed notes a change put in the dirty set.
func (l *lagClock) changed() {
	if l.pending == 0 {
		l.pending = time.Now().UnixNano()
	}
}

// taken notes that a flush took the whole dirty set.
func (l *lagClock) taken() {
	if l.pending != 0 && (l.writing == 0 || l.pending < l.writing) {
		l.writing = l.pending
	}
	l.pending = 0
}

// written notes that the flush wrote what it took; failed that it did not (it is
// dirty again).
func (l *lagClock) written() { l.writing = 0 }

func (l *lagClock) failed() {
	if l.writing != 0 && (l.pending == 0 || l.writing < l.pending) {
		l.pending = l.writing
	}
	l.writing = 0
}

// age is how long the oldest unwritten change has waited; 0 when all are written.
func (l *lagClock) age() time.Duration {
	oldest := l.pending
	if l.writing != 0 && (oldest == 0 || l.writing < oldest) {
		oldest = l.writing
	}
	if oldest == 0 {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - oldest)
}

// WriteLag is how long the oldest change of this node's presence (a device connected
// or gone) has waited to be written to Redis; 0 when every change is written. It grows
// while Redis is slow or down: savers routing by presence do not see those devices yet.
func (p *Tracker) WriteLag() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lag.age()
}
