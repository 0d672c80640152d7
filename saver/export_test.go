package saver

// QueuedLen is the number of records waiting in b's queue (not counting the batch being
// saved), for the external tests of this package.
func QueuedLen(b *Batcher) int { return len(b.queue) }
