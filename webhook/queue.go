package webhook

import "time"

// item is one message encoded as its member of the body's "messages" array.
type item struct {
	json []byte
	at   time.Time // when it was enqueued: Linger counts from the oldest
}

// queue is a FIFO of items bounded by count and bytes that drops its oldest to make
// room (the overflow policy: a fresh notification is worth more than a stale one). It
// is not safe for concurrent use: Sender guards it with its mutex.
type queue struct {
	items    []item // ring buffer of cap maxLen
	head, n  int
	bytes    int
	maxLen   int
	maxBytes int
}

func newQueue(maxLen, maxBytes int) *queue {
	return &queue{items: make([]item, maxLen), maxLen: maxLen, maxBytes: maxBytes}
}

// push appends it, first dropping the oldest items until it fits. It returns how many
// were dropped; an item larger than the whole byte bound is itself dropped (1).
func (q *queue) push(it item) (dropped int) {
	if len(it.json) > q.maxBytes {
		return 1
	}
	for q.n > 0 && (q.n == q.maxLen || q.bytes+len(it.json) > q.maxBytes) {
		q.pop()
		dropped++
	}
	q.items[(q.head+q.n)%q.maxLen] = it
	q.n++
	q.bytes += len(it.json)
	return dropped
}

// peek returns the oldest item; q must not be empty.
func (q *queue) peek() *item { return &q.items[q.head] }

// pop removes and returns the oldest item; q must not be empty.
func (q *queue) pop() item {
	it := q.items[q.head]
	q.items[q.head] = item{}
	q.head = (q.head + 1) % q.maxLen
	q.n--
	q.bytes -= len(it.json)
	return it
}
