// Package cleanup releases what a vanished node left behind: when a node's znode disappears
// from the registry watcher's view, Cleaner drops the node's presence entries (fencing its
// registration) and, once no live node carries its registration token any more, releases its
// port claim. It speaks to no system itself: it drives the registry watcher, the port
// allocator and the presence tracker through the small interfaces it declares.
package cleanup
