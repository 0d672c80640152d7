package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"imgate/cluster/bus"
	"imgate/cluster/rabbit"
	"imgate/cluster/registry"
	"imgate/saver"
)

// clusterFlags are the service settings shared by the cluster roles. One namespace
// names everything a deployment owns: the ZooKeeper root, the Redis key prefix, the
// RabbitMQ exchange and queue prefix and the PostgreSQL schema.
type clusterFlags struct {
	zk             string
	amqp           string
	redis          string
	pg             string
	namespace      string
	connectTimeout time.Duration
	zkSession      time.Duration
	flushInterval  time.Duration
}

func (f *clusterFlags) register(fs *flag.FlagSet, need string) {
	if strings.Contains(need, "zk") {
		fs.StringVar(&f.zk, "zk", "127.0.0.1:2181", "ZooKeeper servers, comma-separated HOST:PORT")
		fs.DurationVar(&f.zkSession, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout")
	}
	if strings.Contains(need, "amqp") {
		fs.StringVar(&f.amqp, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	}
	if strings.Contains(need, "redis") {
		fs.StringVar(&f.redis, "redis", "127.0.0.1:6379", "Redis HOST:PORT")
	}
	if strings.Contains(need, "pg") {
		fs.StringVar(&f.pg, "pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL DSN")
	}
	fs.StringVar(&f.namespace, "namespace", "imgate", "deployment namespace: ZooKeeper root, Redis prefix, RabbitMQ prefix, PostgreSQL schema")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 5*time.Second, "how long to wait for each service at start before giving up")
	if strings.Contains(need, "flush") {
		fs.DurationVar(&f.flushInterval, "flush-interval", time.Second, "how often the node writes its online count to ZooKeeper (at most; only when changed)")
	}
}

var namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

func (f *clusterFlags) validate() error {
	if !namespaceRE.MatchString(f.namespace) {
		return fmt.Errorf("--namespace %q: want lower-case letters, digits and _, starting with a letter", f.namespace)
	}
	if f.connectTimeout <= 0 || f.flushInterval < 0 {
		return errors.New("--connect-timeout and --flush-interval must be positive")
	}
	return nil
}

func (f *clusterFlags) zkConfig(log *slog.Logger) registry.Config {
	return registry.Config{
		Servers: strings.Split(f.zk, ","), Namespace: f.namespace, SessionTimeout: f.zkSession,
		FlushInterval: f.flushInterval, ConnectTimeout: f.connectTimeout, Logger: log,
	}
}

func (f *clusterFlags) amqpConfig(log *slog.Logger) bus.Config {
	return bus.Config{Config: rabbit.Config{URL: f.amqp, DialTimeout: f.connectTimeout, Logger: log}, Prefix: f.namespace + "."}
}

func (f *clusterFlags) redisPrefix() string { return f.namespace + ":" }

// openRedis connects to Redis and fails within the connect timeout when it does not answer.
func (f *clusterFlags) openRedis(ctx context.Context, log *slog.Logger) (*redis.Client, error) {
	// The client library logs its pool and reconnect notes to stderr unstructured; the
	// logger is process-wide, and a role opens one client, so it is set here.
	redis.SetLogger(redisLog{log.With("component", "redis")})
	c := redis.NewClient(&redis.Options{Addr: f.redis, DialTimeout: f.connectTimeout, MaxRetries: 1})
	pctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis %s unreachable: %w", f.redis, err)
	}
	return c, nil
}

// openPostgres opens the store (creating and migrating the schema) within the connect timeout.
func (f *clusterFlags) openPostgres(ctx context.Context, log *slog.Logger) (*saver.Postgres, error) {
	pctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	pg, err := saver.OpenPostgres(pctx, saver.PostgresConfig{DSN: f.pg, Schema: f.namespace, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("postgres unreachable: %w", err)
	}
	return pg, nil
}

// waitBus waits for a RabbitMQ connection within the connect timeout.
func (f *clusterFlags) waitBus(ctx context.Context, ready func(context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	if err := ready(rctx); err != nil {
		return fmt.Errorf("rabbitmq %s unreachable: %w", rabbit.BrokerAddr(f.amqp), err)
	}
	return nil
}

// roleFlags parses a cluster role's flags; it returns a logger, or an exit status when
// the process should stop (0 after -h, 2 for bad flags).
func roleFlags(fs *flag.FlagSet, args []string, stdout, stderr interface{ Write([]byte) (int, error) }, logs *logFlags, validate func() error) (*slog.Logger, int, bool) {
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, usageError(stderr, fs.Name(), err), false
	}
	log, err := logs.logger(stderr)
	if err == nil {
		err = validate()
	}
	if err != nil {
		return nil, usageError(stderr, fs.Name(), err), false
	}
	return log.With("role", fs.Name()), 0, true
}

// redisLog hands go-redis's internal notes (pool, reconnects) to slog at debug level: they
// repeat what the roles already report (health, presence write errors) as structured lines.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
