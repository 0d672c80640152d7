package saver_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		// The crash test's child process: TestHelperProcess runs and is killed; no
		// leak check.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}
