// Command imgate is the imgate binary: one process per role.
//
//	imgate [standalone] [flags]   node + dispatcher + store in one process (the default)
//	imgate node [flags]           a cluster node (ZooKeeper, RabbitMQ, Redis, PostgreSQL)
//	imgate saver [flags]          the cluster's saver: save queue → PostgreSQL → fanout
//	imgate dispatch [flags]       the cluster's dispatcher
//	imgate token --user U         a CONNECT_INIT token for nodes started with --auth-secret
//	imgate bench [flags]          the load generator
//	imgate drain --node-id ID     drain a node through the dispatcher's admin route
//	imgate version                the version, commit and Go version (also --version)
//
// Run `imgate <role> -h` for a role's flags. Every flag can also be set through the
// environment (IMGATE_ plus the flag name in upper case with - as _, e.g.
// IMGATE_WS_ADDR) or a config file given with --config (lines of `name = value`);
// a flag on the command line wins over the environment, which wins over the file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"imgate/bench"
)

// role is one subcommand.
type role struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func roles() []role {
	return []role{
		{"standalone", "node + dispatcher + embedded store in one process (default)", runStandalone},
		{"node", "cluster node: gnet WebSocket server registered in ZooKeeper, messages through RabbitMQ", runNode},
		{"saver", "cluster saver: save queue → PostgreSQL (inbox seq) → fanout", runSaver},
		{"dispatch", "cluster dispatcher: node pick from a ZooKeeper-watched view, history, presence", runDispatch},
		{"token", "print a CONNECT_INIT token for --user signed with --auth-secret", runToken},
		{"bench", "load generator: idle, p2p, devices, churn scenarios (imgate bench -h)", bench.Main},
		{"drain", "drain a node: the dispatcher stops picking it, its clients get 1001 over --window", runDrain},
		{"version", "print the version, commit and Go version (also --version)", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatchRole(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatchRole picks the role named by args[0] (standalone when args is empty or starts
// with a flag) and runs it.
func dispatchRole(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "standalone"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "standalone" && len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		name = "version"
	}
	if name == "help" {
		usage(stdout)
		return 0
	}
	for _, r := range roles() {
		if r.name == name {
			return r.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "imgate: unknown role %q (run imgate help)\n", name)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: imgate [role] [flags]\n\nroles:")
	for _, r := range roles() {
		fmt.Fprintf(w, "  %-12s %s\n", r.name, r.summary)
	}
	fmt.Fprintln(w, "\nRun imgate <role> -h for the role's flags.")
}
