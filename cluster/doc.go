// Package cluster holds the small parts an imgate node shares with the rest of the cluster, each
// with a memory twin for the embedded standalone default and tests:
//
//   - the node registry in ZooKeeper (ZKRegistry): every node owns one EPHEMERAL_SEQUENTIAL znode
//     /<namespace>/server-list/im-NNNNNNNNNN whose JSON data carries ip, port, onlineCounts, nodeId,
//     draining and a registration token. The node rewrites only its own znode, batched by a flusher
//     (SetOnline is an atomic store and never does I/O), and re-registers after a session expiry
//     with a new, higher epoch (the sequence number) that fences its presence entries;
//   - ZKNodeWatcher, an in-memory view of all registered nodes kept current by ZooKeeper watches, for
//     the dispatcher, the port allocator and the presence cleaner;
//   - port allocation (RedisPorts, MemoryPorts): a node claims the first free port of base, base+step,
//     ... with HSETNX on the hash <prefix>ports (field "<host>:<port>", value the owner) and releases
//     it with compare-and-delete;
//   - the message bus between nodes (RabbitMQ) and user presence (Redis).
//
// Keys and paths, with the default namespace "imgate" and prefix "imgate:":
//
//	/imgate/server-list/im-0000000003   {"ip":"10.0.0.5","port":875,"onlineCounts":12,
//	                                     "nodeId":"im-0000000003","draining":false,"token":"…"}
//	imgate:ports                        hash "10.0.0.5:875" → owner (the node's registration token)
//
// Every network call runs on the part's own goroutines; nothing here may be called from an event
// loop except the methods documented as lock-free (ZKRegistry.SetOnline, ZKRegistry.SetDraining,
// ZKNodeWatcher.Nodes).
package cluster
