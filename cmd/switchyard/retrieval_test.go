package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestIngestAndEval: `switchyard ingest` adds a corpus (and skips it when
// unchanged, reports bad files), `switchyard eval retrieval` scores the
// collection on its labelled set.
func TestIngestAndEval(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`
listen: 127.0.0.1:0
backends: [{name: sim, kind: sim, sim: {model: sim-chat}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
collections: [{name: godocs}]
`), 0o600)
	dataset := filepath.Join(repoRoot(t), "internal", "retrieve", "eval", "testdata")
	run := func(args ...string) (string, error) {
		cmd := command(t, context.Background(), args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("ingest", "--config", cfg, "--collection", "godocs", filepath.Join(dataset, "corpus"))
	if err != nil || !regexp.MustCompile(`godocs: 188 files: 188 added \(\d+ chunks`).MatchString(out) {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	if out, err := run("ingest", "--config", cfg, "--collection", "godocs", filepath.Join(dataset, "corpus")); err != nil || !strings.Contains(out, "188 unchanged") {
		t.Fatalf("ingest again: %v\n%s", err, out)
	}
	out, err = run("eval", "retrieval", "--config", cfg, "--collection", "godocs", "--dataset", dataset)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	recall := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(hybrid|vector|keyword)\s+132\s+([0-9.]+)`).FindAllStringSubmatch(out, -1) {
		recall[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if len(recall) != 3 || recall["hybrid"] <= recall["vector"] {
		t.Errorf("recall@5 %v: want the three modes, hybrid above vector\n%s", recall, out)
	}

	// Bad input: an unknown collection, a binary file among good ones.
	if out, err := run("ingest", "--config", cfg, "--collection", "nope", dataset); err == nil || !strings.Contains(out, `no collection "nope"`) {
		t.Errorf("unknown collection: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "bin.txt"), []byte("a\x00b"), 0o600)
	os.WriteFile(filepath.Join(dir, "ok.md"), []byte("# Fine\n\nSome text.\n"), 0o600)
	out, err = run("ingest", "--config", cfg, "--collection", "godocs", "bin.txt", "ok.md")
	if err == nil || !strings.Contains(out, "failed: ") || !strings.Contains(out, "bin.txt") || !strings.Contains(out, "1 added") || !strings.Contains(out, "1 failed") {
		t.Errorf("a binary file: %v\n%s", err, out)
	}
}
