package retrieval_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// TestNodeSDK runs the official OpenAI Node SDK (the one
// gateway/testdata/node installs with `npm ci`, as .ci/run does) through
// the Files and Vector Stores APIs: testdata/api-node/sdk.mjs. Without
// node or the SDK it skips, or fails when SWITCHYARD_REQUIRE_NODE is set.
func TestNodeSDK(t *testing.T) {
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
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join("testdata", "api-node", "sdk.mjs"), g.URL+"/v1", apiKeys["acme-hr"], pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("the Node SDK check failed: %v\n%s", err, out)
	}
}
