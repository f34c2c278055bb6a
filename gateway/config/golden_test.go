package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in configs/testdata")

const testdataDir = "../../configs/testdata"

// testEnv is the environment the golden cases see; MISSING_* are unset.
var testEnv = map[string]string{
	"ADMIN_TOKEN":    "admin-secret",
	"UPSTREAM_HOST":  "127.0.0.1:8000",
	"OPENAI_API_KEY": "sk-test-123",
}

func lookupTestEnv(k string) (string, bool) {
	v, ok := testEnv[k]
	return v, ok
}

// TestGolden runs every configs/testdata/<case>.yaml through ParseEnv and
// compares the result with <case>.golden (the effective config, redacted) or
// <case>.err (the error lines). Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdataDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases in %s: %v", testdataDir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, ext := runCase(t, data, filepath.Base(f))
			base := strings.TrimSuffix(f, ".yaml")
			if *update {
				other := map[string]string{".err": ".golden", ".golden": ".err"}[ext]
				os.Remove(base + other)
				if err := os.WriteFile(base+ext, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(base + ext)
			if err != nil {
				t.Fatalf("got %s output but reading %s: %v\noutput:\n%s", ext, base+ext, err, got)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s mismatch (run with -update to accept)\n--- got:\n%s\n--- want:\n%s", ext, got, want)
			}
		})
	}
}

// runCase parses one case and returns its golden output and which kind of
// golden file it belongs in.
func runCase(t *testing.T, data []byte, file string) ([]byte, string) {
	t.Helper()
	c, err := ParseEnv(data, file, lookupTestEnv)
	if err != nil {
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error is %T, want *Errors: %v", err, err)
		}
		if len(*errs) == 0 {
			t.Fatal("empty *Errors returned")
		}
		return []byte(err.Error() + "\n"), ".err"
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	// The effective config must itself be a valid config that decodes to
	// the same thing (secrets aside, which print redacted).
	c2, err := ParseEnv(out, file+" (redacted)", lookupTestEnv)
	if err != nil {
		t.Fatalf("re-parsing the effective config: %v\n%s", err, out)
	}
	out2, err := c2.Redacted()
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("effective config not stable on re-parse (%v):\n%s\n---\n%s", err, out, out2)
	}
	return out, ".golden"
}
