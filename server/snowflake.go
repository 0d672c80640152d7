package server

import (
	"fmt"
	"sync/atomic"
	"time"
)

// snowflakeEpoch is 2020-01-01T00:00:00Z in Unix milliseconds: ids fit 41 bits of
// milliseconds until 2089.
const snowflakeEpoch = 1577836800000

const (
	workerBits   = 10
	sequenceBits = 12
	// MaxWorkerID is the largest snowflake worker id (--node-id).
	MaxWorkerID  = 1<<workerBits - 1
	sequenceMask = 1<<sequenceBits - 1
)

// Snowflake generates 63-bit ids: 41 bits of milliseconds since 2020, 10 bits of worker
// id, 12 bits of sequence. Ids from one generator strictly increase, also when the wall
// clock steps back (the generator keeps using its last millisecond). It is lock-free and
// safe for concurrent use.
type Snowflake struct {
	worker int64
	now    func() int64 // Unix milliseconds
	last   atomic.Int64 // last id handed out
}

// NewSnowflake returns a generator for worker id w (0..MaxWorkerID).
func NewSnowflake(w int) (*Snowflake, error) {
	if w < 0 || w > MaxWorkerID {
		return nil, fmt.Errorf("server: snowflake worker id %d out of range 0..%d", w, MaxWorkerID)
	}
	return &Snowflake{worker: int64(w), now: func() int64 { return time.Now().UnixMilli() }}, nil
}

// Next returns the next id.
func (s *Snowflake) Next() int64 {
	for {
		last := s.last.Load()
		lastMs := last >> (workerBits + sequenceBits)
		ms := s.now() - snowflakeEpoch
		var id int64
		if ms > lastMs {
			id = ms<<(workerBits+sequenceBits) | s.worker<<sequenceBits
		} else {
			// Same millisecond or the clock went back: continue the sequence of the last
			// millisecond; when it is exhausted, borrow the next millisecond.
			seq := last&sequenceMask + 1
			if seq > sequenceMask {
				id = (lastMs+1)<<(workerBits+sequenceBits) | s.worker<<sequenceBits
			} else {
				id = lastMs<<(workerBits+sequenceBits) | s.worker<<sequenceBits | seq
			}
		}
		if s.last.CompareAndSwap(last, id) {
			return id
		}
	}
}
