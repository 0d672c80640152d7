// Command bench runs the load generator on its own, the same as `imgate bench`, for use before
// or without the imgate binary: go run ./bench/cmd/bench --url ws://127.0.0.1:9001/ws ...
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"imgate/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "bench" { // worker processes are started as `<exe> bench --worker`
		args = args[1:]
	}
	os.Exit(bench.Main(ctx, args, os.Stdout, os.Stderr))
}
