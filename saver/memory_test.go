package saver_test

import (
	"testing"

	"imgate/saver"
	"imgate/saver/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) saver.Store { return saver.NewMemory() })
}
