package gateway_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envRequireNode names the environment variable that, when 1 or true, makes
// the Node SDK test fail instead of skip when node or the SDK is missing.
// .ci/run sets it once `npm ci` has installed the SDK.
const envRequireNode = "SWITCHYARD_REQUIRE_NODE"

func nodeRequired() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(envRequireNode))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// TestNodeSDK runs the official OpenAI Node SDK (gateway/testdata/node,
// installed by `npm ci` there, as .ci/run does) against the gateway: plain
// and streamed chat, completions, embeddings (base64 on the wire, the Node
// SDK's default), the model list, a typed 404, and streams a stage answers
// from a stored answer (Replay) and with text it produces (Synth). Without node or the SDK
// it skips, or fails when SWITCHYARD_REQUIRE_NODE is set.
func TestNodeSDK(t *testing.T) {
	missing := func(reason string) {
		t.Helper()
		if nodeRequired() {
			t.Fatalf("%s is set, but %s", envRequireNode, reason)
		}
		t.Skipf("skipping the Node SDK check: %s", reason)
	}
	dir := filepath.Join("testdata", "node")
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		missing("the Node SDK is not installed; run `npm ci --prefix gateway/testdata/node` (as .ci/run does)")
	}
	g := startGateway(t, simConfig(`
routes:
  - {name: replay, match: {model: canned-replay}, chain: [{test_canned: {mode: replay}}], to: sim-chat}
  - {name: synth, match: {model: canned-synth}, chain: [{test_canned: {mode: synth}}], to: sim-chat}
  - {name: cached, match: {model: cached-chat}, chain: [{cache: {nondeterministic: true, allow_truncated: true}}], to: sim-chat}
  - {name: default}
`))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join(dir, "sdk.mjs"), g.url+"/v1").CombinedOutput()
	if err != nil {
		t.Fatalf("the Node SDK check failed: %v\n%s", err, out)
	}
}
