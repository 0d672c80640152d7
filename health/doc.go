// Package health is the one health answer of every imgate role, in two routes:
//
//	GET /healthz  liveness: the process is alive and serving its clients (only the
//	              checks marked Live, e.g. "node": not draining). For load balancers
//	              and liveness probes; a dependency's outage never fails it.
//	GET /readyz   every check, dependencies included:
//	    200 {"status":"ok","checks":{"node":"ok","zookeeper":"ok","redis":"ok"}}
//	    200 {"status":"degraded","checks":{"node":"ok","zookeeper":"<error text>","redis":"ok"}}
//	    503 {"status":"fail","checks":{"node":"ok","zookeeper":"ok","redis":"<error text>"}}
//
// The checks run concurrently, each bounded by one timeout, and are listed in the
// order they were given. A check that returns an error, outlives the timeout ("timed
// out after 2s") or panics ("health: check redis panicked: …") fails; a panic never
// reaches the server. A failed check that Degrades (ZooKeeper) makes the answer 200
// "degraded"; any other failure 503 "fail". No checks means ok.
//
// Checker.LiveHandler and Checker.ReadyHandler serve them on net/http (the node and
// saver roles); the dispatcher serves the same status and body from Checker.Live and
// Checker.Ready on fasthttp.
package health
