package server

import (
	"hash/maphash"
	"sync"
)

const sessionShards = 64

// sessions maps users to their connections. It is sharded so that event loops and delivery goroutines rarely contend. Slices handed out
// by devices are never modified afterwards (copy on write), so callers may use them
// after the lock is released.
type sessions struct {
	seed  maphash.Seed
	users [sessionShards]userShard
}

type userShard struct {
	mu    sync.RWMutex
	users map[string][]*conn // guarded by mu
}

func newSessions() *sessions {
	s := &sessions{seed: maphash.MakeSeed()}
	for i := range s.users {
		s.users[i].users = make(map[string][]*conn)
	}
	return s
}

func (s *sessions) userShard(user string) *userShard {
	return &s.users[maphash.String(s.seed, user)%sessionShards]
}

// add registers c (bound to c.user) and returns how many devices the user has now.
func (s *sessions) add(c *conn) int {
	sh := s.userShard(c.user)
	sh.mu.Lock()
	old := sh.users[c.user]
	devs := make([]*conn, len(old), len(old)+1)
	copy(devs, old)
	devs = append(devs, c)
	sh.users[c.user] = devs
	sh.mu.Unlock()
	return len(devs)
}

// remove unregisters c and returns how many devices the user has left.
func (s *sessions) remove(c *conn) int {
	sh := s.userShard(c.user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.users[c.user]
	devs := make([]*conn, 0, len(old))
	for _, d := range old {
		if d != c {
			devs = append(devs, d)
		}
	}
	if len(devs) == 0 {
		delete(sh.users, c.user)
	} else {
		sh.users[c.user] = devs
	}
	return len(devs)
}

// devices returns the connections of user; the slice must not be modified.
func (s *sessions) devices(user string) []*conn {
	sh := s.userShard(user)
	sh.mu.RLock()
	devs := sh.users[user]
	sh.mu.RUnlock()
	return devs
}

// device returns user's connection with id, or nil. Users have a few devices, so a
// scan is cheaper than a second map entry per connection.
func (s *sessions) device(user string, id uint64) *conn {
	for _, d := range s.devices(user) {
		if d.id == id {
			return d
		}
	}
	return nil
}

// each calls fn for every bound connection, shard by shard, outside the shard locks.
func (s *sessions) each(fn func(c *conn)) {
	var devs [][]*conn
	for i := range s.users {
		sh := &s.users[i]
		devs = devs[:0]
		sh.mu.RLock()
		for _, d := range sh.users {
			devs = append(devs, d)
		}
		sh.mu.RUnlock()
		for _, d := range devs {
			for _, c := range d {
				fn(c)
			}
		}
	}
}
