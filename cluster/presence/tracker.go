package presence

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis presence layout, under the prefix (default "imgate:"):
//
//	<prefix>presence:<user>        hash  field <nodeID> = "<epoch>:<devices>"
//	<prefix>node:<nodeID>:users    set   users with an entry of nodeID (for RemoveNode)
//	<prefix>node:<nodeID>:fence    string the highest epoch removed by RemoveNode (24h TTL)
//	<prefix>node:<nodeID>:marker   string this node's entries are in Redis (vanishes on restart)
//
// Every write goes through a Lua script that refuses to write when the fence is at
// or above the writer's epoch, and never overwrites a field holding a higher epoch.
// The scripts touch keys they compute from the prefix: a single Redis server (or a
// cluster with one hash slot per prefix) is assumed.
const (
	presenceChunk    = 500
	presenceFenceTTL = 24 * time.Hour
)

// presenceWrite: KEYS fence, users set; ARGV hash prefix, node, epoch, then user,count pairs.
var presenceWrite = redis.NewScript(`
local epoch = tonumber(ARGV[3])
local fence = tonumber(redis.call('GET', KEYS[1]) or '-1')
if fence >= epoch then return -1 end
local n = 0
for i = 4, #ARGV, 2 do
  local user = ARGV[i]
  local key = ARGV[1] .. user
  local cur = redis.call('HGET', key, ARGV[2])
  local ce = nil
  if cur then ce = tonumber(string.match(cur, '^(-?%d+):')) end
  if ce == nil or ce <= epoch then
    if tonumber(ARGV[i+1]) > 0 then
      redis.call('HSET', key, ARGV[2], ARGV[3] .. ':' .. ARGV[i+1])
      redis.call('SADD', KEYS[2], user)
    else
      redis.call('HDEL', key, ARGV[2])
      redis.call('SREM', KEYS[2], user)
    end
    n = n + 1
  end
end
return n`)

// presenceRemove: KEYS fence, users set; ARGV hash prefix, node, epoch, fence ttl ms, then users.
var presenceRemove = redis.NewScript(`
local epoch = tonumber(ARGV[3])
local fence = tonumber(redis.call('GET', KEYS[1]) or '-1')
if epoch > fence then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
local n = 0
for i = 5, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local cur = redis.call('HGET', key, ARGV[2])
  local ce = nil
  if cur then ce = tonumber(string.match(cur, '^(-?%d+):')) end
  if ce == nil or ce <= epoch then
    redis.call('HDEL', key, ARGV[2])
    redis.call('SREM', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n`)

// Config configures a Tracker. The zero value of every field means its documented default.
type Config struct {
	// Prefix is the Redis key prefix of every key (see the layout above). Default "imgate:".
	Prefix string
	// FlushInterval is how often pending changes are written; every 20 intervals the
	// tracker also checks whether Redis restarted. Default 50ms.
	FlushInterval time.Duration
	// Logger receives write failures and resyncs. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "imgate:"
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 50 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c (zero values are valid: they mean the default).
func (c Config) Validate() error {
	if c.FlushInterval < 0 {
		return fmt.Errorf("presence: flush interval %v: want ≥ 0", c.FlushInterval)
	}
	return nil
}

// Tracker is a cluster node's presence in Redis: on which nodes a user has devices, and
// how many on each.
//
// Connected and Disconnected are called by a node for its own devices from its event
// loops: they never block on I/O. Entries carry the node's registration epoch, so
// RemoveNode can drop the entries of a dead node without touching a newer registration,
// and a paused node that comes back cannot write them again.
//
// Connected and Disconnected update a local count under a short lock and mark the
// user dirty; a goroutine writes the latest count of every dirty user each flush
// interval, in chunks of 500 users per script call. Bursts coalesce per user: the
// pending set never holds a user twice, so while Redis is slow or down it grows to
// at most the number of distinct users whose count changed, and nothing is lost
// (failed writes stay dirty). Every 20 flushes it checks Redis's run_id and its
// marker key; after a restart (or a flush of the database) it resyncs this node's
// entries automatically.
type Tracker struct {
	client   *redis.Client
	prefix   string
	log      *slog.Logger
	interval time.Duration

	writeMu sync.Mutex // serializes writes to Redis: flush, resync, RemoveNode of self

	mu         sync.Mutex
	nodeID     string
	epoch      int64
	counts     map[string]int      // user → devices on this node, the local truth
	dirty      map[string]struct{} // users whose count changed since the last write
	needResync bool
	retired    []presenceIdentity // previous identities to remove from Redis
	err        error              // last write error, ErrFenced when fenced
	runID      string             // Redis run_id at the last resync
	started    uint64             // flushes begun; guarded by mu
	flushed    uint64             // the last flush that wrote everything it took
	failed     uint64             // the last flush that did not
	flushedCh  chan struct{}      // closed and replaced after each flush ends
	lag        lagClock           // the oldest change not yet in Redis (lag.go)

	kick     chan struct{} // cap 1: Sync wants a flush now
	resynced chan struct{} // cap 1: a resync was written (Resynced)

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type presenceIdentity struct {
	nodeID string
	epoch  int64
}

// New starts the presence of node nodeID registered at epoch (the registration's
// epoch, increasing across registrations). Its first flush resyncs, replacing whatever
// an earlier process of the same node id left.
func New(client *redis.Client, nodeID string, epoch int64, cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Tracker{
		client:     client,
		prefix:     cfg.Prefix,
		log:        cfg.Logger,
		interval:   cfg.FlushInterval,
		nodeID:     nodeID,
		epoch:      epoch,
		counts:     make(map[string]int),
		dirty:      make(map[string]struct{}),
		needResync: true,
		stop:       make(chan struct{}),
		flushedCh:  make(chan struct{}),
		kick:       make(chan struct{}, 1),
		resynced:   make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	go p.run()
	return p, nil
}

func (p *Tracker) hashPrefix() string             { return p.prefix + "presence:" }
func (p *Tracker) nodeKey(id, what string) string { return p.prefix + "node:" + id + ":" + what }

// Connected records one more device of userID on this node; it never blocks on Redis.
func (p *Tracker) Connected(userID string) { p.add(userID, 1) }

// Disconnected records one device fewer of userID on this node; it never blocks on Redis.
func (p *Tracker) Disconnected(userID string) { p.add(userID, -1) }

func (p *Tracker) add(userID string, delta int) {
	p.mu.Lock()
	n := p.counts[userID] + delta
	if n <= 0 {
		delete(p.counts, userID)
	} else {
		p.counts[userID] = n
	}
	p.dirty[userID] = struct{}{}
	p.lag.changed()
	p.mu.Unlock()
}

// State returns nil when the last write succeeded, ErrFenced (wrapped) when this
// registration was removed, or the last Redis error.
func (p *Tracker) State() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// SetIdentity moves this node's entries to a new registration: they are written
// under nodeID at epoch, and the previous identity's entries are removed.
func (p *Tracker) SetIdentity(nodeID string, epoch int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if nodeID == p.nodeID && epoch == p.epoch {
		return
	}
	p.retired = append(p.retired, presenceIdentity{p.nodeID, p.epoch})
	p.nodeID, p.epoch = nodeID, epoch
	p.needResync = true
	p.err = nil
}

// Lookup returns node id → devices of userID, read from Redis; empty when offline.
func (p *Tracker) Lookup(ctx context.Context, userID string) (map[string]int, error) {
	m, err := p.client.HGetAll(ctx, p.hashPrefix()+userID).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: lookup: %w", err)
	}
	out := make(map[string]int, len(m))
	for node, v := range m {
		if n := devicesOf(v); n > 0 {
			out[node] = n
		}
	}
	return out, nil
}

// RemoveNode drops the entries nodeID wrote with an epoch <= epoch and fences that
// registration; the cleanup calls it when the node's znode disappears. It first raises nodeID's fence to epoch, so a
// paused node that resumes cannot write again, then deletes, 500 users at a time,
// every entry of nodeID whose epoch is <= epoch.
func (p *Tracker) RemoveNode(ctx context.Context, nodeID string, epoch int64) error {
	set := p.nodeKey(nodeID, "users")
	keys := []string{p.nodeKey(nodeID, "fence"), set}
	base := []any{p.hashPrefix(), nodeID, epoch, presenceFenceTTL.Milliseconds()}
	if err := presenceRemove.Run(ctx, p.client, keys, base...).Err(); err != nil {
		return fmt.Errorf("presence: remove node: %w", err)
	}
	var cursor uint64
	for {
		users, next, err := p.client.SScan(ctx, set, cursor, "", presenceChunk).Result()
		if err != nil {
			return fmt.Errorf("presence: remove node: %w", err)
		}
		if len(users) > 0 {
			args := append(append([]any{}, base...), presenceStrings(users)...)
			if err := presenceRemove.Run(ctx, p.client, keys, args...).Err(); err != nil {
				return fmt.Errorf("presence: remove node: %w", err)
			}
		}
		if next == 0 {
			// The marker only detects Redis restarts for a live identity: without this,
			// every retired or vanished identity would leave one behind for good.
			if err := p.client.Del(ctx, p.nodeKey(nodeID, "marker")).Err(); err != nil {
				return fmt.Errorf("presence: remove node: %w", err)
			}
			return nil
		}
		cursor = next
	}
}

func presenceStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// devicesOf reads the device count of a presence value "<epoch>:<devices>"; 0 when the
// value is not of that form.
func devicesOf(v string) int {
	_, devices, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(devices)
	if !ok || err != nil {
		return 0
	}
	return n
}
