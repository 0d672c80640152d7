package server

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// gapTracker repairs live delivery in a cluster. Persisted messages reach a node through
// the broker, and a node queue that overflows (drop-head) or a failure between broker and
// node can lose a delivery; a device that stays connected would then see its inbox seq jump
// and, following the protocol, move its cursor past the missing message. The tracker keeps,
// for every user bound to this node, the highest seq delivered without a hole (the
// frontier). A delivery beyond frontier+1 opens a gap; if the gap is still open after a
// short delay (a second saver may simply have committed out of order), the missing range is
// replayed from the store to the user's devices on this node. Duplicates are harmless:
// devices drop them by msgId.
//
// Its methods are called from event loops (drop), the delivery goroutine (seen) and replay
// workers (start); each takes one shard lock and never blocks on I/O.
type gapTracker struct {
	srv    *Server
	delay  time.Duration
	seed   maphash.Seed
	shards [sessionShards]gapShard
	// catchUps counts the catch-ups started: a bind whose newest seq was read before one
	// started and that joins the tracker after it was taken is caught up alone (replay.go).
	catchUps atomic.Uint64
}

type gapShard struct {
	mu    sync.Mutex
	users map[string]*userSeqs // guarded by mu
}

// userSeqs is one user's delivery state on this node.
type userSeqs struct {
	frontier int64 // every seq <= frontier was delivered (or replayed)
	highest  int64 // the highest seq delivered
	pending  bool  // a check is scheduled
	// repairs counts the repair jobs of user queued or running. A check waits until it
	// is 0: two repairs of one device at once could push their frames out of order.
	repairs int
	// newest: a catch-up (to the store's newest seq) waits for the check, behind a
	// repair that was running when it was asked for.
	newest bool
}

func newGapTracker(srv *Server, delay time.Duration) *gapTracker {
	g := &gapTracker{srv: srv, delay: delay, seed: maphash.MakeSeed()}
	for i := range g.shards {
		g.shards[i].users = make(map[string]*userSeqs)
	}
	return g
}

func (g *gapTracker) shard(user string) *gapShard {
	return &g.shards[maphash.String(g.seed, user)%sessionShards]
}

// start records that the first device of user here has everything up to seq. An entry
// that exists already is left alone: another device's hole must stay visible (raising
// the frontier to a newer device's position would hide it for good).
func (g *gapTracker) start(user string, seq int64) {
	sh := g.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users[user] == nil && len(g.srv.sessions.devices(user)) > 0 {
		sh.users[user] = &userSeqs{frontier: seq, highest: seq}
	}
}

// seen records the delivery of seq to user's devices here and schedules a repair when it
// leaves a hole. It reports hold when this delivery opens the hole (the caller then holds
// the user's devices here, taskHold, before the frame, until the repair's taskRelease),
// and skip when seq is at or below the frontier: delivered already (a redelivery, or
// covered by a repair), so writing it now would put a lower seq after higher ones.
func (g *gapTracker) seen(user string, seq int64) (hold, skip bool) {
	if seq <= 0 {
		return false, false
	}
	sh := g.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[user]
	if u == nil {
		return false, false
	}
	if seq <= u.frontier {
		return false, true
	}
	u.highest = max(u.highest, seq)
	if seq == u.frontier+1 && u.highest == seq {
		u.frontier = seq
		return false, false
	}
	if !u.pending {
		u.pending = true
		time.AfterFunc(g.delay, func() { g.check(user) })
		return true, false
	}
	return false, false
}

// check repairs user's hole if it is still open: every device of user on this node gets
// the range (frontier, highest] from the store. While an earlier repair of user is still
// queued or running, the check waits another delay (its hold stays on the devices).
func (g *gapTracker) check(user string) {
	sh := g.shard(user)
	sh.mu.Lock()
	u := sh.users[user]
	if u == nil {
		sh.mu.Unlock()
		return
	}
	if u.repairs > 0 {
		sh.mu.Unlock()
		time.AfterFunc(g.delay, func() { g.check(user) })
		return
	}
	u.pending = false
	from, to := u.frontier, u.highest
	s := g.srv
	devs := s.sessions.devices(user)
	if u.newest {
		u.newest = false
		u.repairs = len(devs)
		sh.mu.Unlock()
		g.catchUpUser(user, from, devs)
		return
	}
	u.frontier = to
	if from < to {
		u.repairs = len(devs)
	}
	sh.mu.Unlock()
	if from >= to {
		for _, c := range devs {
			c.loop.push([]task{{c: c, kind: taskRelease, seq: to}})
		}
		return
	}
	s.log.Info("repairing a delivery gap", "user", user, "after", from, "upTo", to)
	for _, c := range devs {
		if !s.replays.submit(replayJob{c: c, user: user, cursor: from, repair: true, upTo: to}) {
			// The device cannot be repaired now: make it reconnect and replay from its
			// cursor, which is still below the hole.
			g.repaired(user)
			s.log.Warn("gap repair not scheduled: replay queue full; closing with 1013", "user", user)
			c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
		}
	}
}

// repaired records that one repair job of user (check, catchUp) has pushed all it will.
func (g *gapTracker) repaired(user string) {
	sh := g.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u := sh.users[user]; u != nil && u.repairs > 0 {
		u.repairs--
	}
}

// catchUp repairs every user bound here whose inbox in the store is ahead of what this
// node delivered, from its frontier to the store's newest seq: after this node's
// presence was missing (see Server.CatchUp), routed messages went elsewhere; after a
// broker restart, the messages on their way to this node were dropped; either way
// without leaving a hole anyone would see. It reads the newest seqs first, maxBatch
// users per query, and repairs only the users behind: one repair per bound user would
// overflow the replay queue of a node holding thousands of users (each closed with
// 1013). A user whose newest seq cannot be read is repaired anyway. Each repaired
// user's devices hold their live frames until the repair is written; a user whose gap
// repair is running is caught up by the check after it (the repair's frames come first).
func (g *gapTracker) catchUp() {
	g.catchUps.Add(1)
	users, froms := g.frontiers()
	if len(users) == 0 {
		return
	}
	behind, unread := 0, 0
	for start := 0; start < len(users); start += maxBatch {
		chunk := users[start:min(start+maxBatch, len(users))]
		newest, err := g.newest(chunk)
		if err != nil {
			unread += len(chunk)
			g.srv.log.Warn("catch-up: newest seqs not read; repairing these users anyway", "users", len(chunk), "err", err)
		}
		for i, user := range chunk {
			if err == nil && newest[i] <= froms[start+i] {
				continue // delivered everything the store holds
			}
			behind++
			g.catchUpOne(user)
		}
	}
	g.srv.log.Info("caught up the bound users from the store", "users", len(users), "behind", behind, "unread", unread)
}

// frontiers returns every user tracked here and its frontier.
func (g *gapTracker) frontiers() (users []string, froms []int64) {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for user, u := range sh.users {
			users = append(users, user)
			froms = append(froms, u.frontier)
		}
		sh.mu.Unlock()
	}
	return users, froms
}

// newest reads the newest seq of each of users from the store.
func (g *gapTracker) newest(users []string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(g.srv.replays.ctx, catchUpReadTimeout)
	defer cancel()
	return g.srv.readNewest(ctx, users)
}

// catchUpReadTimeout bounds one newest-seq read of a catch-up.
const catchUpReadTimeout = 10 * time.Second

// catchUpOne repairs user from its frontier to the store's newest seq, or, while a
// repair of user is queued or running, has the check after it do so.
func (g *gapTracker) catchUpOne(user string) {
	sh := g.shard(user)
	sh.mu.Lock()
	u := sh.users[user]
	if u == nil { // its last device left meanwhile
		sh.mu.Unlock()
		return
	}
	if u.repairs > 0 {
		u.newest = true
		if !u.pending {
			u.pending = true
			time.AfterFunc(g.delay, func() { g.check(user) })
		}
		sh.mu.Unlock()
		return
	}
	devs := g.srv.sessions.devices(user)
	from := u.frontier
	u.repairs += len(devs)
	sh.mu.Unlock()
	g.catchUpUser(user, from, devs)
}

// catchUpUser holds devs of user and repairs them from from to the store's newest seq;
// the caller counted their jobs in the user's repairs.
func (g *gapTracker) catchUpUser(user string, from int64, devs []*conn) {
	s := g.srv
	for _, c := range devs {
		c.loop.push([]task{{c: c, kind: taskHold}})
		if !s.replays.submit(replayJob{c: c, user: user, cursor: from, repair: true, upTo: toNewest}) {
			g.repaired(user)
			s.log.Warn("catch-up not scheduled: replay queue full; closing with 1013", "user", user)
			c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
		}
	}
}

// raise moves user's frontier up to seq: a repair to the store's newest seq covers
// everything up to it.
func (g *gapTracker) raise(user string, seq int64) {
	sh := g.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u := sh.users[user]; u != nil && seq > u.frontier {
		u.frontier = seq
		u.highest = max(u.highest, seq)
	}
}

// drop forgets user once its last device here is gone.
func (g *gapTracker) drop(user string) {
	sh := g.shard(user)
	sh.mu.Lock()
	delete(sh.users, user)
	sh.mu.Unlock()
}
