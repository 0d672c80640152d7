package clustertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// env returns the environment variable name, or def when it is empty.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ZKAddr is the ZooKeeper of the tests (IMGATE_TEST_ZK, default 127.0.0.1:2181).
func ZKAddr() string { return env("IMGATE_TEST_ZK", "127.0.0.1:2181") }

// AMQPURL is the RabbitMQ of the tests (IMGATE_TEST_AMQP, default guest on 127.0.0.1:5672).
func AMQPURL() string { return env("IMGATE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/") }

// RedisAddr is the Redis of the tests (IMGATE_TEST_REDIS, default 127.0.0.1:6379).
func RedisAddr() string { return env("IMGATE_TEST_REDIS", "127.0.0.1:6379") }

// pgDSN is the PostgreSQL of the tests (IMGATE_TEST_PG, default postgres on 127.0.0.1:5432).
func pgDSN() string {
	return env("IMGATE_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// RandHex returns n random bytes as 2n hex digits, for unique test namespaces.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor polls cond every 25 ms until it holds, failing the test after d. It returns how
// long the wait took.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitState(t, d, what, func() (bool, string) { return cond(), "" })
}

// WaitState is WaitFor with a description of the state for the failure message.
func WaitState(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			if state != "" {
				t.Fatalf("timed out after %v waiting until %s; %s", d, what, state)
			}
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
