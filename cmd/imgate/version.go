package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release version, set at link time by `make dist`:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/imgate
//
// Empty in a plain `go build`: versionLine then reports the module version ("devel" for a
// build from a checkout).
var version string

// commit and commitTime are the VCS revision (12 hex digits) and its commit time, set at
// link time by `make dist` (-X main.commit=… -X main.commitTime=…). Empty: taken from the
// build info, which has them only when the toolchain stamped VCS data (-buildvcs).
var commit, commitTime string

// buildVersion returns the version, the commit and the commit time of this binary; the
// commit fields are empty when the build recorded none (go test binaries, -buildvcs=false).
func buildVersion() (v, rev, when string) {
	v, rev, when = version, commit, commitTime
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		if rev == "" {
			rev, when = vcsRevision(info)
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return v, rev, when
}

// vcsRevision reads the revision (12 hex digits, "-dirty" when modified) and its time from
// the build info's VCS settings; empty when the build recorded none.
func vcsRevision(info *debug.BuildInfo) (rev, when string) {
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev, when
}

// versionLine is what `imgate version` prints:
//
//	imgate v1.2.3 (commit 0123456789ab, 2026-11-30T17:00:00Z) go1.26.0 linux/amd64
//
// The parenthesis is left out when the build recorded no commit.
func versionLine() string {
	v, rev, when := buildVersion()
	line := "imgate " + v
	switch {
	case rev != "" && when != "":
		line += " (commit " + rev + ", " + when + ")"
	case rev != "":
		line += " (commit " + rev + ")"
	}
	return line + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// runVersion is `imgate version` (also `imgate --version`): one line on stdout.
func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, versionLine())
	return 0
}
