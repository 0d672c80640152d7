package cluster

import (
	"context"
	"fmt"
	"io"
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

// PresenceOption configures a RedisPresence.
type PresenceOption func(*RedisPresence)

// PresenceLogger sets the logger (default: discard).
func PresenceLogger(l *slog.Logger) PresenceOption {
	return func(p *RedisPresence) { p.log = l }
}

// PresenceFlushInterval sets how often pending changes are written (default 50ms)
// and how often a Redis restart is checked for (every 20 flush intervals).
func PresenceFlushInterval(d time.Duration) PresenceOption {
	return func(p *RedisPresence) { p.interval = d }
}

// RedisPresence is the Redis Presence of a cluster node.
//
// Connected and Disconnected update a local count under a short lock and mark the
// user dirty; a goroutine writes the latest count of every dirty user each flush
// interval, in chunks of 500 users per script call. Bursts coalesce per user: the
// pending set never holds a user twice, so while Redis is slow or down it grows to
// at most the number of distinct users whose count changed, and nothing is lost
// (failed writes stay dirty). Every 20 flushes it checks Redis's run_id and its
// marker key; after a restart (or a flush of the database) it resyncs this node's
// entries automatically.
type RedisPresence struct {
	client   *redis.Client
	prefix   string
	log      *slog.Logger
	interval time.Duration

	writeMu sync.Mutex // serializes writes to Redis: flush, Resync, RemoveNode of self

	mu         sync.Mutex
	nodeID     string
	epoch      int64
	counts     map[string]int      // user → devices on this node, the local truth
	dirty      map[string]struct{} // users whose count changed since the last write
	needResync bool
	retired    []presenceIdentity // previous identities to remove from Redis
	err        error              // last write error, ErrFenced when fenced
	runID      string             // Redis run_id at the last resync

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type presenceIdentity struct {
	nodeID string
	epoch  int64
}

// NewRedisPresence starts the presence of node nodeID registered at epoch (the
// registration's epoch, increasing across registrations) with keys under prefix
// ("imgate:" when empty). Its first flush resyncs, replacing whatever an earlier
// process of the same node id left.
func NewRedisPresence(client *redis.Client, prefix, nodeID string, epoch int64, opts ...PresenceOption) *RedisPresence {
	if prefix == "" {
		prefix = "imgate:"
	}
	p := &RedisPresence{
		client:     client,
		prefix:     prefix,
		log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		interval:   50 * time.Millisecond,
		nodeID:     nodeID,
		epoch:      epoch,
		counts:     make(map[string]int),
		dirty:      make(map[string]struct{}),
		needResync: true,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	go p.run()
	return p
}

func (p *RedisPresence) hashPrefix() string             { return p.prefix + "presence:" }
func (p *RedisPresence) nodeKey(id, what string) string { return p.prefix + "node:" + id + ":" + what }

// Connected implements Presence; it never blocks on Redis.
func (p *RedisPresence) Connected(userID string) { p.add(userID, 1) }

// Disconnected implements Presence; it never blocks on Redis.
func (p *RedisPresence) Disconnected(userID string) { p.add(userID, -1) }

func (p *RedisPresence) add(userID string, delta int) {
	p.mu.Lock()
	n := p.counts[userID] + delta
	if n <= 0 {
		delete(p.counts, userID)
	} else {
		p.counts[userID] = n
	}
	p.dirty[userID] = struct{}{}
	p.mu.Unlock()
}

// Pending returns how many users have changes not yet written.
func (p *RedisPresence) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty)
}

// State returns nil when the last write succeeded, ErrFenced (wrapped) when this
// registration was removed, or the last Redis error.
func (p *RedisPresence) State() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// SetIdentity moves this node's entries to a new registration: they are written
// under nodeID at epoch, and the previous identity's entries are removed.
func (p *RedisPresence) SetIdentity(nodeID string, epoch int64) {
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

// Lookup implements Presence: node id → devices of userID, read from Redis.
func (p *RedisPresence) Lookup(ctx context.Context, userID string) (map[string]int, error) {
	m, err := p.client.HGetAll(ctx, p.hashPrefix()+userID).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: presence lookup: %w", err)
	}
	out := make(map[string]int, len(m))
	for node, v := range m {
		_, devices, ok := strings.Cut(v, ":")
		n, err := strconv.Atoi(devices)
		if !ok || err != nil || n <= 0 {
			continue
		}
		out[node] = n
	}
	return out, nil
}

// Presence is Lookup under the name the dispatcher's presence API expects.
func (p *RedisPresence) Presence(ctx context.Context, userID string) (map[string]int, error) {
	return p.Lookup(ctx, userID)
}

// RemoveNode implements Presence. It first raises nodeID's fence to epoch, so a
// paused node that resumes cannot write again, then deletes, 500 users at a time,
// every entry of nodeID whose epoch is <= epoch.
func (p *RedisPresence) RemoveNode(ctx context.Context, nodeID string, epoch int64) error {
	set := p.nodeKey(nodeID, "users")
	keys := []string{p.nodeKey(nodeID, "fence"), set}
	base := []any{p.hashPrefix(), nodeID, epoch, presenceFenceTTL.Milliseconds()}
	if err := presenceRemove.Run(ctx, p.client, keys, base...).Err(); err != nil {
		return fmt.Errorf("cluster: presence remove node: %w", err)
	}
	var cursor uint64
	for {
		users, next, err := p.client.SScan(ctx, set, cursor, "", presenceChunk).Result()
		if err != nil {
			return fmt.Errorf("cluster: presence remove node: %w", err)
		}
		if len(users) > 0 {
			args := append(append([]any{}, base...), presenceStrings(users)...)
			if err := presenceRemove.Run(ctx, p.client, keys, args...).Err(); err != nil {
				return fmt.Errorf("cluster: presence remove node: %w", err)
			}
		}
		if next == 0 {
			// The marker only detects Redis restarts for a live identity: without this,
			// every retired or vanished identity would leave one behind for good.
			if err := p.client.Del(ctx, p.nodeKey(nodeID, "marker")).Err(); err != nil {
				return fmt.Errorf("cluster: presence remove node: %w", err)
			}
			return nil
		}
		cursor = next
	}
}

// Resync replaces this node's entries in Redis with snapshot, which also becomes
// the local count. Entries of users absent from snapshot are deleted.
func (p *RedisPresence) Resync(ctx context.Context, snapshot map[string]int) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.mu.Lock()
	clear(p.counts)
	for u, n := range snapshot {
		if n > 0 {
			p.counts[u] = n
		}
	}
	p.mu.Unlock()
	return p.resyncLocked(ctx)
}

func presenceStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
