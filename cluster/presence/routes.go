package presence

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// errUnresolved is wrapped by Routes.Lookup when a user has a device on a node whose
// route the resolver does not know (a node that registered a moment ago, or one that
// is going away): the caller delivers that batch to every node instead.
var errUnresolved = errors.New("presence: node without a known route")

// Routes answers "which nodes hold a device of these users" for routed delivery, with
// one pipelined read per batch. Presence names nodes by their registration id; resolve
// turns one into the node's route key (its queue's routing key, Record.Node).
type Routes struct {
	client  *redis.Client
	prefix  string
	resolve func(nodeID string) (route string, ok bool)
}

// NewRoutes reads the presence written under prefix ("imgate:" when empty).
func NewRoutes(client *redis.Client, prefix string, resolve func(nodeID string) (string, bool)) *Routes {
	if prefix == "" {
		prefix = "imgate:"
	}
	return &Routes{client: client, prefix: prefix, resolve: resolve}
}

// Lookup returns, for each of users with a device anywhere, the route keys of the nodes
// holding one (users with no device are absent). The error wraps errUnresolved when a
// node id has no known route; the map is then complete but for that node.
func (r *Routes) Lookup(ctx context.Context, users []string) (map[string][]string, error) {
	if len(users) == 0 {
		return map[string][]string{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(users))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.HGetAll(ctx, r.prefix+"presence:"+u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence: routes: %w", err)
	}
	out := make(map[string][]string, len(users))
	var unresolved string
	for i, c := range cmds {
		for node, v := range c.Val() {
			if devicesOf(v) <= 0 {
				continue
			}
			route, ok := r.resolve(node)
			if !ok {
				unresolved = node
				continue
			}
			out[users[i]] = append(out[users[i]], route)
		}
	}
	if unresolved != "" {
		return out, fmt.Errorf("%w: %s", errUnresolved, unresolved)
	}
	return out, nil
}
