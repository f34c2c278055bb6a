package gateway_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeSDK runs the official OpenAI Node SDK (gateway/testdata/node,
// installed by `npm ci` there, as .ci/run does) against the gateway: plain
// and streamed chat, completions, embeddings (base64 on the wire, the Node
// SDK's default), the model list and a typed 404.
func TestNodeSDK(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed; skipping the Node SDK check")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Skip("the Node SDK is not installed; run `npm ci --prefix gateway/testdata/node` (as .ci/run does)")
	}
	g := startGateway(t, simConfig(""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join(dir, "sdk.mjs"), g.url+"/v1").CombinedOutput()
	if err != nil {
		t.Fatalf("the Node SDK check failed: %v\n%s", err, out)
	}
}
