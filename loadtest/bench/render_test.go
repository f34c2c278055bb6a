package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
	}
}

func TestRenderMarkdownGolden(t *testing.T) {
	for name, withNginx := range map[string]bool{"bench.golden.md": true, "bench-no-nginx.golden.md": false} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := RenderMarkdown(&b, fixtureResults(withNginx)); err != nil {
				t.Fatal(err)
			}
			golden(t, name, b.Bytes())
		})
	}
}

// The JSON results file must re-render to the same markdown (--render).
func TestResultsJSONRoundTrip(t *testing.T) {
	r := fixtureResults(true)
	var want bytes.Buffer
	if err := RenderMarkdown(&want, r); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var got, stderr bytes.Buffer
	if code := run([]string{"--render", path}, &got, &stderr); code != 0 {
		t.Fatalf("run --render: exit %d: %s", code, stderr.String())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("re-rendered markdown differs:\n%s\nwant:\n%s", got.String(), want.String())
	}
}
