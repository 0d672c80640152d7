// Package registry keeps the cluster's node list in ZooKeeper.
//
//   - Registry keeps one node registered: it owns one EPHEMERAL_SEQUENTIAL znode
//     /<namespace>/server-list/im-NNNNNNNNNN whose JSON data carries ip, port, onlineCounts,
//     nodeId, draining, a registration token and, when the node has them, its public
//     WebSocket URL (wsUrl, --advertise-url) and the base URL of its admin routes (adminUrl). It rewrites only its own znode, from its own
//     goroutine: once per FlushInterval it reads the online count (Config.Online) and writes the
//     data only when something changed. After a session expiry it re-registers with a new,
//     higher epoch (the sequence number) that fences the node's presence entries.
//   - Watcher is an in-memory view of all registered nodes kept current by ZooKeeper watches,
//     for the dispatcher, the port allocator and the cleanup of vanished nodes.
//
// Paths, with the default namespace "imgate":
//
//	/imgate/server-list/im-0000000003   {"ip":"10.0.0.5","port":875,"onlineCounts":12,
//	                                     "nodeId":"im-0000000003","draining":false,"token":"…",
//	                                     "wsUrl":"wss://im.example.com/n3/ws",
//	                                     "adminUrl":"http://10.0.0.5:8081"}
//
// Every ZooKeeper call runs on the part's own goroutines; nothing here may be called from an
// event loop except the methods documented as lock-free (Registry.SetDraining, Watcher.Nodes,
// Watcher.View).
package registry
