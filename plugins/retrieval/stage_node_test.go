package retrieval_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// TestStageNodeSDK runs docs/retrieval.md's Node SDK walkthrough
// (testdata/stage-node/rag.mjs: upload, attach with attributes, filtered
// search, chat with the stage, plain and streamed) with the official Node
// SDK against configs/retrieval.yaml's collection and route on an open
// gateway. Without node or the SDK it skips, or fails when
// SWITCHYARD_REQUIRE_NODE is set.
func TestStageNodeSDK(t *testing.T) {
	missing := func(reason string) {
		t.Helper()
		switch strings.ToLower(strings.TrimSpace(os.Getenv("SWITCHYARD_REQUIRE_NODE"))) {
		case "1", "true", "yes":
			t.Fatalf("SWITCHYARD_REQUIRE_NODE is set, but %s", reason)
		}
		t.Skipf("skipping the Node SDK walkthrough: %s", reason)
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
	docs, err := filepath.Abs(filepath.Join("..", "..", "configs", "retrieval-docs"))
	if err != nil {
		t.Fatal(err)
	}
	g := gwtest.Start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
data_dir: %s
backends: [{name: sim, kind: sim, sim: {model: sim-chat, profile: fast, output-len: "uniform:20-60"}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
collections: [{name: docs, sources: [{path: %s, metadata: {source: handbook}}]}]
routes:
  - {name: rag, match: {model: sim-chat-rag}, to: sim-chat, chain: [{retrieval: {collection: docs, top_k: 4, max_context_tokens: 1500}}]}
  - {name: default, match: {model: "*"}}
`, t.TempDir(), docs))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join("testdata", "stage-node", "rag.mjs"), g.URL+"/v1", pkg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("the Node SDK walkthrough failed: %v\n%s", err, out)
	}
}
