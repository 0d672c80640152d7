// Package webhook tells an app's backend about messages whose recipient had no
// connected device, so that it can send a push notification (PROTOCOL §8).
//
// # The contract
//
// A [Sender] POSTs to Config.URL, with Content-Type application/json:
//
//	{"event":"message.offline","messages":[
//	  {"userId":"bob","seq":42,"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"msgId":"7392012345678901234","chatTime":"2026-11-27T10:00:00.123Z","seq":42}}
//	]}
//
// userId is the recipient who had no device; seq the message's position in that
// user's inbox (also chatMsg.seq); chatMsg the persisted message as a device would
// receive it, written by codec.AppendChatMsg (unknown members kept, groupId when the
// message is a group's). The header X-Imgate-Signature is "sha256=" followed by the
// lowercase hex HMAC-SHA256 of the exact body bytes under the webhook secret: the
// receiver computes it over the raw body and compares in constant time.
//
// # Delivery
//
//   - Batched: a POST carries up to MaxBatch messages and MaxBatchBytes of body; the
//     oldest waiting message waits at most Linger for company.
//   - Any 2xx accepts the whole batch. A network error, a timeout, 429 or 5xx is
//     retried with capped exponential backoff and jitter (RetryMin to RetryMax, longer
//     when the answer sends Retry-After in seconds) for up to GiveUpAfter, then dropped.
//     Any other status (3xx included: redirects are not followed) drops the batch: the
//     request itself is wrong and sending it again would not help.
//   - At least once while the process lives: a POST whose answer is lost is sent again,
//     and a saver that crashes between its commit and its acknowledgement persists the
//     batch again and notifies again. Receivers deduplicate on (userId, seq), which
//     never changes for a message. The queue is in memory: a process that dies loses
//     what it held (at most once across crashes of the sender).
//   - Bounded: at most QueueLen messages and QueueBytes of encoded bytes wait. When a
//     new message finds the queue full the oldest waiting one is dropped (a fresh
//     notification is worth more than a stale one). Every drop is counted in [Stats] by
//     reason and logged (one WARN per 10 s with the counts).
//   - Never on the delivery path: Enqueue encodes and queues and returns; Workers
//     goroutines make the POSTs. Close sends what is queued within its deadline and
//     counts the rest as dropped.
//
// Who counts as offline is the caller's business (the standalone node at delivery, the
// cluster's saver from presence); both hand [message.Offline] entries to Enqueue.
package webhook
