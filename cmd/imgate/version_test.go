package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// testVersion is the version TestMain stamps into the binary under test, the way
// `make dist` stamps a release (-ldflags "-X main.version=...").
const (
	testVersion    = "v0.0.0-imgate-test"
	testCommit     = "0123456789ab"
	testCommitTime = "2026-11-30T17:00:00Z"
)

// versionRE is the line README documents for `imgate version`.
var versionRE = regexp.MustCompile(`^imgate (\S+)( \(commit [0-9a-f]{12}(-dirty)?(, \S+)?\))? go\d+\.\S+ linux/(amd64|arm64)\n$`)

// TestVersionCommand checks that `imgate version` and `imgate --version` of the stamped
// binary print the documented line with the version and commit given at link time.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(binPath, args...).Output() //nolint:gosec // G204: the binary under test
		if err != nil {
			t.Fatalf("imgate %s: %v", strings.Join(args, " "), err)
		}
		m := versionRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("imgate %s printed %q, want the README's form", strings.Join(args, " "), out)
		}
		want := "imgate " + testVersion + " (commit " + testCommit + ", " + testCommitTime + ") "
		if string(m[1]) != testVersion || !strings.HasPrefix(string(out), want) {
			t.Errorf("imgate %s printed %q, want the -X values: %q…", strings.Join(args, " "), out, want)
		}
	}
}

// TestVersionUnstamped checks the line of a build without -X main.version: the version
// comes from the build info (a test binary has none: "devel").
func TestVersionUnstamped(t *testing.T) {
	var out bytes.Buffer
	if code := dispatchRole(context.Background(), []string{"version"}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	m := versionRE.FindStringSubmatch(out.String())
	if m == nil || m[1] == "" || m[1] == testVersion {
		t.Fatalf("unstamped version line %q", out.String())
	}
}
