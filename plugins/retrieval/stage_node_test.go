package retrieval_test

import (
	"context"
	"fmt"
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
	pkg := nodeSDK(t)
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
