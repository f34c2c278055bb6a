package retrieval_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// TestNodeSDK runs the official OpenAI Node SDK (the one
// gateway/testdata/node installs with `npm ci`, as .ci/run does) through
// the Files and Vector Stores APIs: testdata/api-node/sdk.mjs. Without
// node or the SDK it skips, or fails when SWITCHYARD_REQUIRE_NODE is set.
func TestNodeSDK(t *testing.T) {
	pkg := nodeSDK(t)
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join("testdata", "api-node", "sdk.mjs"), g.URL+"/v1", apiKeys["acme-hr"], pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("the Node SDK check failed: %v\n%s", err, out)
	}
}
