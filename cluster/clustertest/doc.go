// Package clustertest is test support shared by the cluster packages' tests and the
// cmd/imgate cluster tests: the addresses of the real services (environment overrides),
// unique names for a test's namespace, a polling waitFor, a TCP proxy that cuts and heals
// connections to a service, and the harness that runs the roles of the binary as processes.
//
// Only tests import it. Every helper takes a testing.TB and cleans up after itself with
// TB.Cleanup; none of it sleeps to wait for a condition except between polls.
package clustertest
