// Package bench is imgate's load generator, `imgate bench`, and (in bench/baseline) the
// reference server it is compared with. It is a client of PROTOCOL.md: it asks the dispatcher
// for a node (or dials given URLs), opens WebSockets, binds each with CONNECT_INIT, and measures
// what a user would see.
//
// # Entry points
//
// cmd/imgate dispatches `imgate bench ARGS...` to Main(ctx, ARGS, stdout, stderr) and nothing
// else. Main also answers two argument forms of its own:
//
//	imgate bench baseline --addr 127.0.0.1:9001   run the gorilla/websocket reference server
//	imgate bench --worker                          (hidden) a worker process, see --procs
//
// Without the imgate binary, `go run ./bench/cmd/bench ARGS...` and
// `go run ./bench/baseline/cmd/baseline --addr 127.0.0.1:9001` do the same.
//
// # Flags
//
//	--dispatcher URL     every client asks GET URL/api/v1/nodes/pick?userId=U, as real clients
//	                     do, and dials data.wsUrl (or ws://ip:port/ws); exclusive with --url
//	--url ws://h:p/ws    target(s), repeatable or comma-separated, assigned round-robin; exclusive
//	                     with --dispatcher except in the storm scenario (first connections to
//	                     --url, reconnects through --dispatcher)
//	--scenario S         idle | p2p | devices | churn | groups | storm (below)
//	--storm-jitter D     storm: a dropped connection reconnects after a random delay in [0, D)
//	                     (default 1s), after a failed attempt after backoff.Delay(n, 250ms, 5s),
//	                     at least the dispatcher's Retry-After
//	--storm-max D        storm: stop reconnecting D after the first drop (default 2m)
//	--conns N            connections: one user each (idle, p2p); at most N cycles at once
//	                     (churn); users × devices (devices, when --users is not given)
//	--users U            users (devices scenario)
//	--devices k          connections per user (devices: default 3; at most 32; groups: default 1)
//	--groups K           groups scenario: groups (default 1); users = K × --group-size
//	--group-size N       groups scenario: members per group (default 10; the server's limit,
//	                     --max-group-members, is 5,000 by default)
//	--api URL            groups scenario: the server API (http://host:port; default --dispatcher)
//	--api-key-file F     groups scenario: file holding the server API key; default the
//	                     IMGATE_API_KEY environment variable (never an argument: argv is public)
//	--procs N            worker processes; each holds at most 19,000 connections (20,000 open
//	                     files per process on our machines). Users are split between workers and
//	                     every message stays inside its worker (sender and receiver belong to the
//	                     same worker; groups: whole groups per worker), so each worker audits its
//	                     own messages; the parent sums counters and merges histograms.
//	--src-ips LIST       source addresses for connections, e.g. 127.0.0.2-127.0.0.20,127.0.1.1,
//	                     round-robin (IP_BIND_ADDRESS_NO_PORT: ports are chosen per 4-tuple). One
//	                     (source, destination) pair has ~28,000 ports: above ~25,000 connections
//	                     to one server, give several sources.
//	--rate-connect R     new connections per second over all processes (default 2000; 0 = unpaced)
//	--rate R             p2p/devices/groups: messages per second over all processes, open loop (a
//	                     message is sent on schedule whether or not earlier ones were ACKed);
//	                     0 = closed loop: every connection keeps --inflight messages unACKed
//	                     and sends one more per ACK. churn: cycles per second (0 = unpaced).
//	--inflight W         window per connection when --rate 0 (default 4)
//	--messages N         stop sending after N messages (churn: N cycles) over all processes
//	--duration D         hold time (idle), sending time (p2p, devices, groups), churn time,
//	                     storm: the longest wait for the first drop (default 10s)
//	--keepalive D        each bound connection sends KEEPALIVE (msgType 9) or, with
//	                     --keepalive-kind ping, a WebSocket ping every D (default 30s; the server
//	                     closes after 60s of silence). Sends are spread over D in 1 s slices.
//	--grace D            after sending stops, wait up to D for outstanding ACKs and deliveries
//	                     (default 3s; ends early when nothing is outstanding)
//	--init-timeout D     bound on dial + upgrade + CONNECT_INIT → ACK, and on each write (10s)
//	--timeout D          hard deadline of the run; default ramp + duration + grace +
//	                     2 × init-timeout + 1 minute. Every run ends by itself.
//	--msg-size B         bytes of text per message (default 32)
//	--user-prefix P      user ids are P-<n> (default bench): use a fresh prefix per run against
//	                     a server with a store, or old inbox entries are replayed
//	--token T            token sent in CONNECT_INIT
//	--protocol P         imgate (PROTOCOL.md, default) or centrifugo: Centrifugo v6's JSON client
//	                     protocol (see Centrifugo below); give --url ws://host:port/connection/websocket
//	--centrifugo-secret S  HMAC secret of the HS256 connection JWTs (Centrifugo's
//	                     client.token.hmac_secret_key; default imgate-bench-secret)
//	--pid PID            server process to measure (repeatable): VmRSS from /proc/PID/status
//	--json               the report as JSON on stdout (instead of the table)
//	--quiet              no progress line on stderr
//	--seed N             random seed (sender/receiver choice)
//	--cpuprofile FILE    CPU profile of the generator (single process)
//
// Exit status: 0 success; 1 a failure, a lost message (audit), the hard deadline or groups that
// could not be created; 2 usage.
//
// # Scenarios
//
//   - idle: open --conns connections at --rate-connect, bind each (CONNECT_INIT, wait for its
//     ACK), hold them for --duration with keepalives, close them (1000). The figures are the
//     connect and init latencies, drops, close codes and memory per connection.
//   - p2p: --conns users with one connection each; after the ramp, messages from a random bound
//     connection to a random other user, at --rate or closed-loop with --inflight.
//   - devices: --users users × --devices connections. Any device sends; every message must reach
//     all devices of the receiver and the sender's other devices. Reports deliveries per device.
//   - churn: cycles of dial → CONNECT_INIT → ACK → close (1000) at --rate, for --duration or
//     --messages cycles, at most --conns at once, user ids in turn.
//   - groups: --groups groups of --group-size members, each member a user with --devices
//     connections; member j of group g is user g × size + j and the group id is <prefix>-g<g>.
//     Before connecting, each worker creates its groups with PUT /api/v1/groups/{groupId}
//     (PROTOCOL §8, Bearer API key). After the ramp, a random bound member sends a content
//     message with groupId and no receiverId, at --rate (or closed-loop with --inflight). Every
//     bound device of every member except the sending connection must receive it once: the
//     report gives deliveries/s, delivery percentiles and the per-member loss audit. Fan-out
//     is sent × (size × devices − 1) deliveries: choose --rate per size (docs/performance.md
//     uses 200, 20 and 2 msg/s for 10, 500 and 5,000 members; scripts/bench-groups.sh). A
//     group of 5,000 needs 5,000 connections in one worker (groups are not split); more groups
//     than fit one process need --procs (at least one group per worker) and, above ~25,000
//     connections to one server, --src-ips.
//   - storm: --conns users, one connection each, every CONNECT_INIT with a cursor (the highest
//     seq the connection saw: 0 at first, then the init ACK's and every delivery's seq). After
//     the ramp the run waits up to --duration for connections to drop (the operator or
//     scripts/bench-storm.sh kills the node that holds them; the bench kills nothing). Each
//     connection that drops while bound reconnects through --dispatcher (pick, dial,
//     CONNECT_INIT with its cursor) after a random delay in [0, --storm-jitter), and after a
//     failed attempt with capped exponential backoff, until it is bound again: its init ACK,
//     which the server sends after the replay. The storm ends when every dropped connection is
//     bound again and none dropped for 500 ms, or --storm-max after the first drop. The report
//     adds: drops, rebinds, FAILED (dropped, never bound again), reconnect attempts, messages
//     replayed before a reconnect's init ACK, the storm time (first drop → last rebind), the
//     spread of the drops, and latency rows for the reconnects alone: rebind (per drop: drop
//     seen by the reader → init ACK of the new connection), re-pick, re-connect, re-init. The
//     ordinary connect/init/pick rows cover the first connections only; the connection
//     counters (attempted, dial failed, init failed, dropped) count reconnects too.
//
// # Messages and timestamps
//
// A content message is {"chatMsg":{"senderId","receiverId","msg","msgType":1,"clientMsgId":
// "<prefix>w<worker>-<n>","t":<unix nanos>}}. The server delivers unknown chatMsg fields
// verbatim, so "t" comes back with every delivery. Times are taken with time.Now in the
// generator process that sent the message (sender and receiver live in the same process).
//
//   - ACK latency: time the ACK was parsed by the sender's reader − time just before the message
//     was written (the same nanosecond stamp as "t"). ACKs are matched by clientMsgId.
//   - delivery latency: time the delivery was parsed by the receiving device's reader − "t".
//     Every delivery counts, including those to the sender's other devices.
//   - connect: TCP connect + WebSocket upgrade (the dispatcher request before it is not included).
//   - init: CONNECT_INIT written → its ACK parsed.
//   - pick (with --dispatcher): the GET of the node pick, from the request to the decoded
//     answer, waiting for one of the worker's keep-alive connections included.
//
// Percentiles come from a log-linear histogram (HDR style: 128 linear buckets per power of two,
// ~1 ns to 60 s, within 1%), nearest rank: pX is the smallest recorded value v such that at least
// X% of values are ≤ v, reported as the middle of its bucket; max is exact. Rates are counts
// divided by the sending time (start of sending until sending stopped, not including grace).
// The progress line (every second, stderr) shows live connections / attempted, per-second
// sent/acked/delivered and p99 over that second.
//
// # Loss audit (p2p, devices, groups)
//
// When a message is sent, the generator notes which devices should receive it: every device of
// the receiver and every other device of the sender that is bound (CONNECT_INIT ACKed) and not
// dropped at that moment; for a group message, every bound device of every member but the
// sending connection (one bit per member device). Deliveries are matched by clientMsgId (and device). After the grace
// period, over the ACKed messages:
//
//   - expected: (message, device) pairs noted at send time
//   - delivered: expected pairs received at least once
//   - lost: expected pairs never received, on devices still connected
//   - duplicated: receipts of a pair already received
//   - excluded (device dropped): expected pairs not received whose device dropped (closed by
//     the server or the network) during the run; the drops are reported in connections/close codes
//   - unexpected: receipts by a device that was not online when the message was sent
//   - unacked: messages with neither ACK nor ERROR when the grace period ended
//   - lossy devices (groups): member devices that lost at least one message — whether loss
//     is spread over the group or concentrated on a few members
//
// Without a store, an ACK promises nothing about devices that are offline; with one, devices
// that reconnect get the rest by replay — this audit only covers live delivery.
//
// # Memory
//
// With --pid, VmRSS is read before the first connection and then every second while every
// worker holds its connections (hold, send, grace); the report gives the last such reading, its
// growth over the first, and growth ÷ connections bound at that moment. The generator's own RSS
// (summed over workers) is reported per live connection too.
//
// # Efficiency
//
// Each connection has one goroutine, its reader, with a 2 KiB bufio.Reader; frames are parsed in
// place and envelopes with a non-allocating scanner. Writes build the masked frame in a
// per-connection buffer under a mutex. Paced senders run one goroutine per core (at most 4) and
// issue sends in 2 ms batches; keepalives are one ticker for all connections. The handshake
// uses gobwas/ws. Pin generator and server to different cores (taskset) when measuring.
// The report gives the generator's own CPU (user + system, summed over workers, from
// getrusage) and that per connection attempt: where the generator shares the machine with
// the servers it measures, compare it with theirs (on a 2-CPU VM it needed 0.5–1 ms per
// connection, as much as the three nodes together; docs/performance.md).
//
// # Centrifugo
//
// With --protocol centrifugo each connection sends connect (an HS256 JWT whose sub is the user,
// signed with the standard library) and then subscribe to its personal channel
// "personal:<user>"; it is bound when the subscribe reply arrives (init latency = connect
// written → subscribe reply). A message from S to R is a publish to "personal:R" carrying
// {"senderId","clientMsgId","msg","t"} as data: the publish reply is the ACK, each push is a
// delivery. With --devices > 1 the same data is also published to "personal:S" in the same
// frame, so the sender's other devices get it as with imgate; Centrifugo also echoes it to the
// sending connection, which drops it uncounted. The server's {} pings are answered with {};
// keepalives are WebSocket pings. Centrifugo needs a namespace "personal" with
// allow_subscribe_for_client and allow_publish_for_client, and the same HMAC secret
// (scripts/bench-compare.sh writes such a config). The loss audit works as for imgate.
//
// In the groups scenario each member subscribes to "group:<groupId>" instead of its personal
// channel (bound on that subscribe reply) and a group message is one publish to that channel;
// Centrifugo needs no API call for it, but a namespace "group" with the same two options
// (scripts/bench-groups.sh writes that config). Centrifugo's echo to the publishing connection
// is dropped uncounted, as above.
package bench
