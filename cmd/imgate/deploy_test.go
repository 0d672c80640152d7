package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deployDir holds the systemd units and their example environment files.
const deployDir = "../../deploy/systemd"

// readKV reads the key=value lines of a unit or env file (repeated keys keep every value).
func readKV(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // G304: the repository's own files
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		kv[k] = append(kv[k], v)
	}
	return kv
}

// roleFlagNames returns the flags `imgate <role> -h` lists.
func roleFlagNames(t *testing.T, role string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	if code := dispatchRole(context.Background(), []string{role, "-h"}, &out, &out); code != 0 {
		t.Fatalf("imgate %s -h: exit %d", role, code)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names[m[1]] = true
	}
	return names
}

// TestSystemdUnits checks what an operator relies on in deploy/systemd: every unit runs
// one role of this binary as the dedicated user, with secrets and settings from
// environment files only (never argv: PROTOCOL §7), a file limit, hardening, and a stop
// timeout longer than the drain window its example sets plus the 15 s of the stop; every
// IMGATE_ variable of the examples names a real flag.
func TestSystemdUnits(t *testing.T) {
	units, _ := filepath.Glob(filepath.Join(deployDir, "*.service"))
	if len(units) < 4 {
		t.Fatalf("units in %s: %v, want node, saver, dispatcher, standalone", deployDir, units)
	}
	flags := map[string]map[string]bool{}
	for _, r := range []string{"node", "saver", "dispatch", "standalone"} {
		flags[r] = roleFlagNames(t, r)
	}
	if !flags["node"]["advertise-url"] || !flags["standalone"]["drain-window"] {
		t.Fatalf("flag listing not parsed: node %v", flags["node"])
	}
	drain := map[string]time.Duration{}
	envs, _ := filepath.Glob(filepath.Join(deployDir, "*.env.example"))
	for _, env := range envs {
		for k, v := range readKV(t, env) {
			name, ok := strings.CutPrefix(k, "IMGATE_")
			flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			known := false
			for _, fs := range flags {
				known = known || fs[flag]
			}
			if !ok || !known {
				t.Errorf("%s: %s is no flag of any role", filepath.Base(env), k)
			}
			if k == "IMGATE_DRAIN_WINDOW" {
				d, err := time.ParseDuration(v[0])
				if err != nil {
					t.Errorf("%s: %s=%s: %v", filepath.Base(env), k, v[0], err)
				}
				drain[filepath.Base(env)] = d
			}
		}
	}
	for _, u := range units {
		name := filepath.Base(u)
		kv := readKV(t, u)
		exec := strings.Fields(strings.Join(kv["ExecStart"], " "))
		if len(exec) != 2 || exec[0] != "/usr/local/bin/imgate" || flags[exec[1]] == nil {
			t.Errorf("%s: ExecStart %v, want /usr/local/bin/imgate <role> and no arguments (settings and secrets from EnvironmentFile)", name, exec)
		}
		for _, k := range []string{"User", "LimitNOFILE", "TimeoutStopSec", "EnvironmentFile", "NoNewPrivileges", "ProtectSystem", "CapabilityBoundingSet"} {
			if len(kv[k]) == 0 {
				t.Errorf("%s: no %s", name, k)
			}
		}
		if u := kv["User"]; len(u) == 0 || u[0] != "imgate" {
			t.Errorf("%s: User %v, want the dedicated user imgate", name, u)
		}
		stop, _ := strconv.Atoi(strings.Join(kv["TimeoutStopSec"], ""))
		for _, env := range kv["EnvironmentFile"] {
			example := filepath.Base(strings.TrimPrefix(env, "-")) + ".example"
			example = strings.Replace(example, "%i", "1", 1)
			if _, err := os.Stat(filepath.Join(deployDir, example)); err != nil {
				t.Errorf("%s: EnvironmentFile %s has no example %s", name, env, example)
			}
			if d, ok := drain[example]; ok && time.Duration(stop)*time.Second <= d+15*time.Second {
				t.Errorf("%s: TimeoutStopSec %ds does not cover the drain window %v of %s plus the 15 s stop", name, stop, d, example)
			}
		}
	}
}
