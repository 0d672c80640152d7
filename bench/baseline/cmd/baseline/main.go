// Command baseline runs the reference gorilla/websocket server of package baseline.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"imgate/bench/baseline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(baseline.Main(ctx, os.Args[1:], os.Stderr))
}
