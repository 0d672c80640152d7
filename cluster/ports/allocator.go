package ports

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Config configures an Allocator. The zero value of every field means its documented default.
type Config struct {
	// Prefix is the Redis key prefix; the claims live in the hash Prefix+"ports".
	// Default "imgate:".
	Prefix string
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "imgate:"
	}
	return c
}

// Allocator allocates node ports through the Redis hash <prefix>ports (field "<host>:<port>",
// value the owner). HSETNX makes a claim race-free: two nodes starting together never get the
// same port. Safe for concurrent use.
type Allocator struct {
	client *redis.Client
	key    string
}

// New returns an allocator using client.
func New(client *redis.Client, cfg Config) *Allocator {
	cfg = cfg.withDefaults()
	return &Allocator{client: client, key: cfg.Prefix + "ports"}
}

// portsReleaseScript deletes field ARGV[1] only if its value is still ARGV[2].
// Returns 1 deleted, 0 missing, -1 held by another owner.
var portsReleaseScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
if v ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// portsClaimScript sets field ARGV[1] to ARGV[2] unless another owner holds it.
// Returns 1 claimed or already held, 0 held by another owner.
var portsClaimScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and v ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// portsReleaseOwnerScript deletes every field whose value is ARGV[1]; returns the count.
var portsReleaseOwnerScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if all[i+1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n
`)

// Acquire claims the first free and bindable port of base, base+step, ... (at most
// portCandidates candidates) for owner with HSETNX. A claimed candidate that cannot be
// bound locally is released again and skipped.
func (p *Allocator) Acquire(ctx context.Context, host string, base, step int, owner string) (int, error) {
	if err := checkPortArgs(host, base, step, owner); err != nil {
		return 0, err
	}
	for i := 0; i < portCandidates; i++ {
		port := base + i*step
		if port > 65535 {
			break
		}
		f := portField(host, port)
		ok, err := p.client.HSetNX(ctx, p.key, f, owner).Result()
		if err != nil {
			return 0, fmt.Errorf("ports: claim %s: %w", f, err)
		}
		if !ok {
			continue
		}
		if portBindable(host, port) != nil {
			if err := p.Release(ctx, host, port, owner); err != nil {
				return 0, err
			}
			continue
		}
		return port, nil
	}
	return 0, fmt.Errorf("%w on %s from %d step %d", ErrNoFreePort, host, base, step)
}

// Claim claims host:port for owner without a bind check (a node re-asserting the port it
// listens on, e.g. after a cleaner released it during a re-registration). It succeeds if the
// port is free or already owner's, else returns ErrNotOwner.
func (p *Allocator) Claim(ctx context.Context, host string, port int, owner string) error {
	f := portField(host, port)
	n, err := portsClaimScript.Run(ctx, p.client, []string{p.key}, f, owner).Int()
	if err != nil {
		return fmt.Errorf("ports: claim %s: %w", f, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotOwner, f)
	}
	return nil
}

// Release deletes the claim on host:port only if owner still holds it (compare-and-delete in
// one Lua script). A missing claim is not an error; one held by another owner is ErrNotOwner.
func (p *Allocator) Release(ctx context.Context, host string, port int, owner string) error {
	f := portField(host, port)
	n, err := portsReleaseScript.Run(ctx, p.client, []string{p.key}, f, owner).Int()
	if err != nil {
		return fmt.Errorf("ports: release %s: %w", f, err)
	}
	if n < 0 {
		return fmt.Errorf("%w: %s", ErrNotOwner, f)
	}
	return nil
}

// ReleaseOwner deletes every claim held by owner (atomically) and returns how many it deleted.
func (p *Allocator) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, errors.New("ports: empty owner")
	}
	n, err := portsReleaseOwnerScript.Run(ctx, p.client, []string{p.key}, owner).Int()
	if err != nil {
		return 0, fmt.Errorf("ports: release owner %s: %w", owner, err)
	}
	return n, nil
}
