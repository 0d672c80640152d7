package client

// seenSet remembers the last n msgIds added: a bounded set for dropping duplicates. The
// oldest id is forgotten when a new one arrives at capacity. Not safe for concurrent use:
// only the Client's reading goroutine touches it.
type seenSet struct {
	ids  map[int64]struct{}
	ring []int64
	next int // index of the oldest id once the ring is full
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ids: make(map[int64]struct{}, n), ring: make([]int64, 0, n)}
}

func (s *seenSet) has(id int64) bool {
	_, ok := s.ids[id]
	return ok
}

// add records id; it reports false when id was already there.
func (s *seenSet) add(id int64) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, id)
	} else {
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.ids[id] = struct{}{}
	return true
}
