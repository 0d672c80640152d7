// Package dispatch is the dispatcher role's HTTP API, on fasthttp: it tells clients
// which node to connect to, lists the nodes, serves message history and presence, and
// reports health. `imgate dispatch` serves it for a cluster, over the ZooKeeper-watched
// node view; `imgate standalone` serves the same routes over a view holding its own
// node, so a client can always start by asking a dispatcher.
//
// # Picking a node
//
// Pick is a pure function: the least-loaded non-draining node, the load being the
// node's reported OnlineCounts plus the clients this dispatcher sent to it since that
// count last changed. Picker owns those recent assignments and answers from memory,
// without I/O:
//
//	p := dispatch.NewPicker(dispatch.StaticView{{ID: "im-1", IP: "127.0.0.1", Port: 875}})
//	n, ok := p.Pick("alice") // n.ID == "im-1"
//
// # Liveness
//
// ProbedView wraps the registry's view and hides the nodes whose WebSocket port refuses
// or ignores a TCP connect twice in a row (probed every 250 ms), so a killed node
// leaves the picks long before its ZooKeeper session expires.
//
// # Routes
//
// Every answer is JSON. Success and error answers share one shape,
// {"status":N,"msg":"…","success":bool,"data":…}, with data null on errors; the HTTP
// status equals "status". Wrong method: 405 (with Allow); unknown path: 404.
//
//	POST /getNettyOnlineInfo            pick a node (the original system's route; userId
//	                                    optional, in the query or a urlencoded form)
//	GET  /api/v1/nodes/pick?userId=U    pick a node; userId optional
//	    200 data={"ip":"127.0.0.1","port":875,"onlineCounts":12,
//	              "nodeId":"im-0000000003","wsUrl":"ws://127.0.0.1:875/ws"}
//	    503 msg="no live node", with Retry-After: 2
//	GET  /api/v1/nodes                  every node of the view, draining ones included,
//	    200 data={"nodes":[{ip,port,onlineCounts,nodeId,wsUrl,
//	                        "draining":false,"recentPicks":3}]}   (by nodeId)
//	GET  /api/v1/messages?userId=U&peerId=P&beforeSeq=N&limit=50
//	    200 data={"messages":[chatMsg…],"hasMore":true,"nextBeforeSeq":41}
//	    newest first; each chatMsg encoded by codec.AppendChatMsg, as in the envelope
//	    (msgId a decimal string, chatTime RFC 3339 UTC millis, empty members left
//	    out) with its inbox "seq". peerId empty: every peer.
//	    beforeSeq 0 or absent: from the newest. limit: default 50, clamped to
//	    Config.HistoryLimit (≤ 200). nextBeforeSeq is the beforeSeq of the next (older)
//	    page, null when hasMore is false.
//	    (a limit too large for an int is clamped too)
//	    401 no or bad credential; 403 another user's token
//	    400 missing userId, bad beforeSeq or limit; 503 no store or store failure
//	GET  /api/v1/presence?userId=U
//	    200 data={"userId":"U","online":true,"nodes":{"im-1":2}}
//	    401 no or bad credential; 403 another user's token
//	    400 missing userId; 404 presence not configured; 503 presence failure
//	GET  /api/v1/admin/nodes            the node list above        } the server API key only
//	GET  /api/v1/admin/sessions?userId=U                           } (Config.APIKey; without
//	    200 data={"userId":"U","sessions":[{nodeId,connId,remoteAddr}]} one: 403; a user
//	POST /api/v1/admin/kick?userId=U    200 data={"userId":"U","closed":2}   token: 403)
//	POST /api/v1/admin/drain?nodeId=ID&window=30s
//	    200 data={"nodeId":"ID","draining":true}; 404 unknown node; 502 the node failed
//	    (sessions, kick and drain go through Deps.Admin; see admin.go)
//	POST /api/v1/dev/login              only with Config.DevLogin (development): body
//	                                    {"userId":"U"} or the form userId=U
//	    200 data={"userId":"U","token":"<JWT>","expiresAt":1764000000}
//	    400 bad userId; 403 another site's Origin; 404 when DevLogin is nil
//	GET  /  and  GET /<file>            the web page (Deps.Web: index.html at /), with a
//	                                    Content-Security-Policy; 404 for other paths
//	GET  /healthz                       liveness: only the checks marked Live
//	    200 {"status":"ok","checks":{}}
//	GET  /readyz                        every dependency
//	    200 {"status":"ok","checks":{"zookeeper":"ok"}}
//	    200 {"status":"degraded","checks":{"zookeeper":"<error text>","redis":"ok"}}
//	    503 {"status":"fail","checks":{"zookeeper":"ok","redis":"<error text>"}}
//	    (package health: the same answers as the node's and the saver's)
//	GET  /metrics
//	    200 the Prometheus text exposition of Deps.Metrics; 404 without one
//
// # Access
//
// History and presence need "Authorization: Bearer <x>" when Config.Auth or
// Config.APIKey is set: x is a user token (Config.Auth, the nodes' verifier) whose
// subject is the query's userId, or the API key (any user). Without one, or with a bad
// one: 401 with WWW-Authenticate: Bearer; a good token of another user: 403. With
// neither configured, both routes are open (development) and New logs a warning.
//
// Every route but /healthz and /readyz checks the Host header against the server's names (Addr's
// host, localhost, 127.0.0.1, ::1, Config.AllowedHosts): another Host gets 421, which
// defeats DNS rebinding. An unspecified listen host (0.0.0.0, ::) accepts any Host
// unless AllowedHosts is set.
//
// GET routes also answer HEAD. Unreadable requests get 400, 408, 413 or 431 in the
// error shape.
package dispatch
