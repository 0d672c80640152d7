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
// Empty in a plain `go build`: versionLine then reports the module version and the VCS
// revision that the Go toolchain records in the binary (runtime/debug build info).
var version string

// buildVersion returns the version, the commit and the commit time of this binary; the
// commit fields are empty when the build recorded none (go test binaries, -buildvcs=false).
func buildVersion() (v, commit, when string) {
	v = version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if v == "" {
			v = "devel"
		}
		return v, "", ""
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit != "" && dirty {
		commit += "-dirty"
	}
	if v == "" {
		v = info.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return v, commit, when
}

// versionLine is what `imgate version` prints:
//
//	imgate v1.2.3 (commit 0123456789ab, 2026-11-30T17:00:00Z) go1.26.0 linux/amd64
//
// The parenthesis is left out when the build recorded no commit.
func versionLine() string {
	v, commit, when := buildVersion()
	line := "imgate " + v
	switch {
	case commit != "" && when != "":
		line += " (commit " + commit + ", " + when + ")"
	case commit != "":
		line += " (commit " + commit + ")"
	}
	return line + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// runVersion is `imgate version` (also `imgate --version`): one line on stdout.
func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, versionLine())
	return 0
}
