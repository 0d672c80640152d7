// Package presence records in Redis on which cluster nodes each user has devices, and how
// many on each: Tracker. A node tells its Tracker about its own devices from its event loops
// (Connected, Disconnected: no I/O, coalesced per user and written in batches); the dispatcher
// reads it (Lookup); the cleanup drops a vanished node's entries (RemoveNode).
//
// Entries carry the node's registration epoch (package registry), so a removal fences the
// dead registration: a paused node that comes back cannot write its entries again until it
// re-registers and calls SetIdentity. The standalone server does not use this package: it has
// no registry and keeps presence in process.
package presence
