package retrieval_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeSDK returns the directory of the official OpenAI Node SDK that
// gateway/testdata/node installs (`npm ci`, as .ci/run does). Without node
// or the SDK it skips the test, or fails it when SWITCHYARD_REQUIRE_NODE
// is set.
func nodeSDK(t *testing.T) string {
	t.Helper()
	missing := func(reason string) {
		t.Helper()
		switch strings.ToLower(strings.TrimSpace(os.Getenv("SWITCHYARD_REQUIRE_NODE"))) {
		case "1", "true", "yes":
			t.Fatalf("SWITCHYARD_REQUIRE_NODE is set, but %s", reason)
		}
		t.Skipf("skipping the Node SDK check: %s", reason)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	pkg, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "node", "node_modules", "openai"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pkg, "index.mjs")); err != nil {
		missing("the Node SDK is not installed; run `npm ci --prefix gateway/testdata/node` (as .ci/run does)")
	}
	return pkg
}
