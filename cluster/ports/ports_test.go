package ports

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// portsAllocator is the method set Allocator and its memory twin share.
type portsAllocator interface {
	Acquire(ctx context.Context, host string, base, step int, owner string) (int, error)
	Claim(ctx context.Context, host string, port int, owner string) error
	Release(ctx context.Context, host string, port int, owner string) error
	ReleaseOwner(ctx context.Context, owner string) (int, error)
	owners(ctx context.Context) (map[string]string, error)
}

var (
	_ portsAllocator = (*Allocator)(nil)
	_ portsAllocator = (*memoryPorts)(nil)
)

// portsTestRedis returns an Allocator under a fresh prefix imgate-test-<hex>:, deleted at cleanup.
func portsTestRedis(t *testing.T) *Allocator {
	t.Helper()
	client, prefix := clustertest.Redis(t)
	return New(client, Config{Prefix: prefix})
}

// portsBase picks a base port below the kernel's ephemeral range (32768+) so that client sockets
// of concurrent tests rarely sit on a candidate.
func portsBase() int { return 20000 + rand.IntN(1200)*10 }

// portsImpls runs fn against both allocators.
func portsImpls(t *testing.T, fn func(t *testing.T, p portsAllocator)) {
	t.Run("redis", func(t *testing.T) { fn(t, portsTestRedis(t)) })
	t.Run("memory", func(t *testing.T) { fn(t, newMemoryPorts()) })
}

func TestPortsConcurrentAcquireGetsDistinctPorts(t *testing.T) {
	portsImpls(t, func(t *testing.T, p portsAllocator) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		base := portsBase()
		const n = 4
		ports := make([]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				ports[i], errs[i] = p.Acquire(ctx, "127.0.0.1", base, 10, "owner-"+strconv.Itoa(i))
			})
		}
		close(start)
		wg.Wait()
		seen := map[int]bool{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Acquire %d: %v", i, errs[i])
			}
			if seen[ports[i]] {
				t.Fatalf("port %d handed out twice: %v", ports[i], ports)
			}
			seen[ports[i]] = true
			if (ports[i]-base)%10 != 0 || ports[i] < base || ports[i] >= base+10*portCandidates {
				t.Fatalf("port %d is not a candidate of base %d step 10", ports[i], base)
			}
		}
		owners, err := p.owners(ctx)
		if err != nil || len(owners) != n {
			t.Fatalf("owners = %v, %v; want %d claims", owners, err, n)
		}
	})
}

func TestPortsAcquireSkipsUnbindablePort(t *testing.T) {
	portsImpls(t, func(t *testing.T, p portsAllocator) {
		ctx := context.Background()
		var ln net.Listener
		var base int
		for range 20 { // find a base whose first candidate we can occupy
			base = portsBase()
			var err error
			if ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base))); err == nil {
				break
			}
		}
		if ln == nil {
			t.Fatal("could not occupy a base port")
		}
		defer ln.Close()
		port, err := p.Acquire(ctx, "127.0.0.1", base, 10, "a")
		if err != nil || port != base+10 {
			t.Fatalf("Acquire = %d, %v; want %d (base %d is in use)", port, err, base+10, base)
		}
		owners, _ := p.owners(ctx)
		if _, ok := owners[portField("127.0.0.1", base)]; ok {
			t.Fatalf("claim on the unbindable port kept: %v", owners)
		}
	})
}

func TestPortsReleaseIsCompareAndDelete(t *testing.T) {
	portsImpls(t, func(t *testing.T, p portsAllocator) {
		ctx := context.Background()
		base := portsBase()
		port, err := p.Acquire(ctx, "127.0.0.1", base, 10, "a")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Release(ctx, "127.0.0.1", port, "b"); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("Release by another owner = %v, want ErrNotOwner", err)
		}
		if owners, _ := p.owners(ctx); owners[portField("127.0.0.1", port)] != "a" {
			t.Fatalf("claim lost to a foreign Release: %v", owners)
		}
		if err := p.Claim(ctx, "127.0.0.1", port, "b"); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("Claim of a foreign port = %v, want ErrNotOwner", err)
		}
		if err := p.Claim(ctx, "127.0.0.1", port, "a"); err != nil {
			t.Fatalf("Claim of an own port = %v", err)
		}
		if err := p.Release(ctx, "127.0.0.1", port, "a"); err != nil {
			t.Fatalf("Release by the owner: %v", err)
		}
		if owners, _ := p.owners(ctx); len(owners) != 0 {
			t.Fatalf("claims after Release: %v", owners)
		}
		if err := p.Release(ctx, "127.0.0.1", port, "a"); err != nil {
			t.Fatalf("second Release = %v, want nil", err)
		}
		// Freed, the port goes to the next claimant.
		if got, err := p.Acquire(ctx, "127.0.0.1", base, 10, "b"); err != nil || got != port {
			t.Fatalf("Acquire after Release = %d, %v; want %d", got, err, port)
		}
	})
}

func TestPortsReleaseOwner(t *testing.T) {
	portsImpls(t, func(t *testing.T, p portsAllocator) {
		ctx := context.Background()
		base := portsBase()
		for _, c := range []struct {
			host  string
			owner string
		}{{"127.0.0.1", "a"}, {"127.0.0.2", "a"}, {"127.0.0.1", "b"}} {
			if err := p.Claim(ctx, c.host, base, c.owner); err != nil {
				// 127.0.0.1:base is claimed by a first; b takes the next port.
				if _, err := p.Acquire(ctx, c.host, base, 10, c.owner); err != nil {
					t.Fatal(err)
				}
			}
		}
		n, err := p.ReleaseOwner(ctx, "a")
		if err != nil || n != 2 {
			t.Fatalf("ReleaseOwner(a) = %d, %v; want 2", n, err)
		}
		owners, _ := p.owners(ctx)
		if len(owners) != 1 || owners[portField("127.0.0.1", base+10)] != "b" {
			t.Fatalf("claims after ReleaseOwner(a) = %v; want only b's", owners)
		}
		if n, err := p.ReleaseOwner(ctx, "a"); err != nil || n != 0 {
			t.Fatalf("second ReleaseOwner(a) = %d, %v; want 0", n, err)
		}
	})
}

func TestPortsAcquireValidatesAndExhausts(t *testing.T) {
	portsImpls(t, func(t *testing.T, p portsAllocator) {
		ctx := context.Background()
		if _, err := p.Acquire(ctx, "127.0.0.1", 0, 10, "a"); err == nil {
			t.Fatal("base 0 accepted")
		}
		if _, err := p.Acquire(ctx, "127.0.0.1", 20000, 10, ""); err == nil {
			t.Fatal("empty owner accepted")
		}
		// From 65530 with step 10 the only candidate is 65530.
		if err := p.Claim(ctx, "127.0.0.1", 65530, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Acquire(ctx, "127.0.0.1", 65530, 10, "a"); !errors.Is(err, ErrNoFreePort) {
			t.Fatalf("Acquire with every candidate claimed = %v, want ErrNoFreePort", err)
		}
	})
}

// owners returns every claim, field "<host>:<port>" → owner.
func (p *Allocator) owners(ctx context.Context) (map[string]string, error) {
	return p.client.HGetAll(ctx, p.key).Result()
}
