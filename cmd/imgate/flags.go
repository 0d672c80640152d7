package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// parseFlags parses args into fs, then fills flags not given on the command line from
// the environment (IMGATE_<NAME>) and from the --config file, in that order of
// precedence. Errors are one line; -h prints the flags to stdout and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	configPath := fs.String("config", "", "config file of `name = value` lines (flags and env win over it)")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "usage: imgate %s [flags]\n\n", fs.Name())
			fs.PrintDefaults()
			return err
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	var setErr error
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if _, secret := f.Value.(*secretValue); secret && setErr == nil {
			setErr = fmt.Errorf("--%s on the command line is visible to every local user (ps, pprof's cmdline): give it in %s, --%s-file or --config", f.Name, envName(f.Name), f.Name)
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || setErr != nil {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				setErr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
			given[f.Name] = true
		}
	})
	if setErr != nil || *configPath == "" {
		return setErr
	}
	return applyConfigFile(fs, *configPath, given)
}

// applyConfigFile sets the flags named in the file at path that were not given otherwise.
func applyConfigFile(fs *flag.FlagSet, path string, given map[string]bool) error {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the config file
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return fmt.Errorf("config %s:%d: want name = value", path, line)
		}
		fl := fs.Lookup(name)
		if fl == nil || name == "config" {
			return fmt.Errorf("config %s:%d: unknown setting %q", path, line, name)
		}
		if given[name] {
			continue
		}
		if err := fl.Value.Set(value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, line, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// logFlags are the logging flags every role has.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", l.format)
}

// usageError prints err as the one-line refusal of bad flags and returns exit status 2.
func usageError(stderr io.Writer, role string, err error) int {
	fmt.Fprintf(stderr, "imgate %s: %v (see imgate %s -h)\n", role, err, role)
	return 2
}
