package retrieval_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"switchyard/internal/leaktest"
	"switchyard/internal/testsvc"
)

// TestMain (the one of the package's tests) checks that no goroutine of
// ours outlives the tests, then stops the PostgreSQL server they started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leaktest.Options(
		goleak.Cleanup(func(code int) {
			testsvc.StopAll()
			os.Exit(code)
		}),
	)...)
}
