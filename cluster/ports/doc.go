// Package ports allocates the WebSocket ports of cluster nodes in Redis.
//
// A node claims the first free port of base, base+step, base+2·step, ... on its host. A claim is
// a field "<host>:<port>" of the hash <prefix>ports whose value is the owner: the node's
// registration token (registry.NewToken, also registry.Config.Token and registry.Node.Token),
// which is known before the node has a port or a znode and survives re-registration. HSETNX makes
// a claim race-free; releases are compare-and-delete. When a node's znode vanishes, the cleanup
// (package cleanup) calls ReleaseOwner with its token once no live node still carries it.
//
//	imgate:ports    hash "10.0.0.5:875" → owner (the node's registration token)
package ports
