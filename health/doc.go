// Package health is the one GET /healthz of every imgate role: a fixed list of
// named checks run concurrently, each bounded by one timeout, rendered as
//
//	200 {"status":"ok","checks":{"zookeeper":"ok","redis":"ok"}}
//	503 {"status":"fail","checks":{"zookeeper":"ok","redis":"<error text>"}}
//
// with the checks in the order they were given. A check that returns an error,
// outlives the timeout ("timed out after 2s") or panics ("health: check redis
// panicked: …") fails; a panic never reaches the server. No checks means ok.
//
// Checker.ServeHTTP serves it on net/http (the node and saver roles); the
// dispatcher serves the same status and body from Checker.Run on fasthttp.
package health
