package presence

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// run is the flusher: it writes dirty users every interval, resyncs when needed,
// and every 20 intervals checks whether Redis restarted.
func (p *Tracker) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-t.C:
		case <-p.kick:
		case <-p.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p.flush(ctx)
			cancel()
			return
		}
		ticks++
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ticks%20 == 0 {
			p.checkRestart(ctx)
		}
		p.flush(ctx)
		cancel()
	}
}

// Close stops the flusher after a last flush. It does not remove this node's
// entries: RemoveNode does, when the node's registration disappears.
func (p *Tracker) Close() error {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return nil
}

// Flush writes pending changes now (a resync first when one is due).
func (p *Tracker) Flush(ctx context.Context) error {
	p.flush(ctx)
	return p.State()
}

func (p *Tracker) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && (p.err == nil || p.err.Error() != err.Error()) {
		p.log.Warn("presence: write failed", "err", err)
	}
	p.err = err
}

func (p *Tracker) flush(ctx context.Context) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.mu.Lock()
	p.started++
	gen := p.started
	p.mu.Unlock()
	ok := p.flushLocked(ctx)
	p.mu.Lock()
	if ok {
		p.flushed = gen
	} else {
		p.failed = gen
	}
	close(p.flushedCh)
	p.flushedCh = make(chan struct{})
	p.mu.Unlock()
}

// Sync returns once every Connected and Disconnected called before it is written to
// Redis, asking the flusher for a flush now instead of at its next tick. It fails at
// once when that flush fails (Redis down: the savers cannot read presence either and
// deliver to every node) or when ctx ends.
func (p *Tracker) Sync(ctx context.Context) error {
	p.mu.Lock()
	want := p.started + 1 // a flush that begins after this call
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	for {
		p.mu.Lock()
		flushed, failed, ch, err := p.flushed, p.failed, p.flushedCh, p.err
		p.mu.Unlock()
		switch {
		case flushed >= want:
			return nil
		case failed >= want:
			return fmt.Errorf("presence: sync: %w", err)
		}
		select {
		case <-ch:
		case <-p.done:
			return fmt.Errorf("presence: sync: closed")
		case <-ctx.Done():
			return fmt.Errorf("presence: sync: %w", ctx.Err())
		}
	}
}

// flushLocked is one flush under writeMu; it reports whether everything it took was written.
func (p *Tracker) flushLocked(ctx context.Context) bool {
	p.mu.Lock()
	retired := p.retired
	p.retired = nil
	resync := p.needResync
	p.mu.Unlock()

	for i, r := range retired {
		if err := p.RemoveNode(ctx, r.nodeID, r.epoch); err != nil {
			p.mu.Lock()
			p.retired = append(p.retired, retired[i:]...)
			p.mu.Unlock()
			p.setErr(err)
			return false
		}
	}
	if resync {
		// The local counts mirror every Connected and Disconnected: they are the truth
		// a resync (after a Redis restart) writes back.
		if err := p.resyncLocked(ctx); err != nil {
			p.setErr(err)
			return false
		}
		return true
	}

	p.mu.Lock()
	if fenced := errors.Is(p.err, ErrFenced); len(p.dirty) == 0 || fenced {
		p.mu.Unlock()
		return !fenced
	}
	users := slices.Collect(maps.Keys(p.dirty))
	clear(p.dirty)
	p.lag.taken()
	pairs := make([]any, 0, 2*len(users))
	for _, u := range users {
		pairs = append(pairs, u, p.counts[u])
	}
	nodeID, epoch := p.nodeID, p.epoch
	p.mu.Unlock()

	err := p.writePairs(ctx, nodeID, epoch, pairs)
	p.mu.Lock()
	if err != nil && !errors.Is(err, ErrFenced) {
		for _, u := range users {
			p.dirty[u] = struct{}{} // written again with its count at the next flush
		}
		p.lag.failed()
	} else {
		p.lag.written()
	}
	p.mu.Unlock()
	p.setErr(err)
	return err == nil
}

// writePairs writes (user, count) pairs for nodeID at epoch, a chunk per script call.
func (p *Tracker) writePairs(ctx context.Context, nodeID string, epoch int64, pairs []any) error {
	keys := []string{p.nodeKey(nodeID, "fence"), p.nodeKey(nodeID, "users")}
	for len(pairs) > 0 {
		n := min(len(pairs), 2*presenceChunk)
		args := append([]any{p.hashPrefix(), nodeID, epoch}, pairs[:n]...)
		pairs = pairs[n:]
		res, err := presenceWrite.Run(ctx, p.client, keys, args...).Int64()
		if err != nil {
			return fmt.Errorf("presence: write: %w", err)
		}
		if res < 0 {
			return fmt.Errorf("%w (node %s, epoch %d)", ErrFenced, nodeID, epoch)
		}
	}
	return nil
}

// resyncLocked rewrites this node's entries from the local counts: the users in
// Redis's users set that have no local count are deleted, every local count is
// written, and the marker key and Redis run_id are recorded. p.writeMu is held.
func (p *Tracker) resyncLocked(ctx context.Context) error {
	p.mu.Lock()
	nodeID, epoch := p.nodeID, p.epoch
	pairs := make([]any, 0, 2*len(p.counts))
	for u, n := range p.counts {
		pairs = append(pairs, u, n)
	}
	clear(p.dirty)
	p.needResync = false
	p.lag.taken()
	p.mu.Unlock()

	err := p.resyncWrite(ctx, nodeID, epoch, pairs)
	p.mu.Lock()
	if err != nil && !errors.Is(err, ErrFenced) {
		p.needResync = true
		p.lag.failed()
	} else {
		p.lag.written()
	}
	p.err = err
	p.mu.Unlock()
	if err == nil {
		p.log.Info("presence: resynced", "node", nodeID, "epoch", epoch, "users", len(pairs)/2)
		select {
		case p.resynced <- struct{}{}:
		default:
		}
	}
	return err
}

// Resynced receives a value after each resync: this node's presence was rewritten
// after it was missing from Redis (a Redis restart, a new registration after a
// ZooKeeper expiry, the start). In between, savers routing by presence did not send
// this node its users' messages: the node catches them up from the store.
func (p *Tracker) Resynced() <-chan struct{} { return p.resynced }

func (p *Tracker) resyncWrite(ctx context.Context, nodeID string, epoch int64, pairs []any) error {
	runID, err := p.redisRunID(ctx)
	if err != nil {
		return err
	}
	inRedis, err := p.client.SMembers(ctx, p.nodeKey(nodeID, "users")).Result()
	if err != nil {
		return fmt.Errorf("presence: resync: %w", err)
	}
	local := make(map[string]bool, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		local[pairs[i].(string)] = true
	}
	for _, u := range inRedis {
		if !local[u] {
			pairs = append(pairs, u, 0)
		}
	}
	if err := p.writePairs(ctx, nodeID, epoch, pairs); err != nil {
		return err
	}
	if err := p.client.Set(ctx, p.nodeKey(nodeID, "marker"), epoch, 0).Err(); err != nil {
		return fmt.Errorf("presence: resync: %w", err)
	}
	p.mu.Lock()
	p.runID = runID
	p.mu.Unlock()
	return nil
}

// checkRestart schedules a resync when Redis's run_id changed or the marker key
// vanished (a restart of a Redis that keeps nothing on disk, or a FLUSHALL).
func (p *Tracker) checkRestart(ctx context.Context) {
	p.mu.Lock()
	nodeID, known, fenced := p.nodeID, p.runID, errors.Is(p.err, ErrFenced)
	p.mu.Unlock()
	if known == "" || fenced {
		return // no resync yet, or fenced: nothing to restore
	}
	runID, err := p.redisRunID(ctx)
	if err != nil {
		p.setErr(err)
		return
	}
	exists, err := p.client.Exists(ctx, p.nodeKey(nodeID, "marker")).Result()
	if err != nil {
		p.setErr(fmt.Errorf("presence: check: %w", err))
		return
	}
	if runID == known && exists == 0 {
		// The marker also goes when this registration was removed (the node deregistered
		// on shutdown, or a cleaner saw its znode vanish): then the fence is at or above
		// our epoch, nothing was lost, and the next write reports ErrFenced.
		p.mu.Lock()
		epoch := p.epoch
		p.mu.Unlock()
		fence, err := p.client.Get(ctx, p.nodeKey(nodeID, "fence")).Int64()
		if err == nil && fence >= epoch {
			p.mu.Lock()
			p.err = fmt.Errorf("%w (node %s, epoch %d)", ErrFenced, nodeID, epoch)
			p.mu.Unlock()
			p.log.Info("presence: this registration was removed; not resyncing", "node", nodeID, "epoch", epoch)
			return
		}
	}
	if runID != known || exists == 0 {
		p.log.Warn("presence: redis lost presence entries; resyncing", "runIdChanged", runID != known)
		p.mu.Lock()
		p.needResync = true
		p.mu.Unlock()
	}
}

func (p *Tracker) redisRunID(ctx context.Context) (string, error) {
	info, err := p.client.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("presence: info: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("presence: info: no run_id")
}

var _ redis.Scripter = (*redis.Client)(nil)
