package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes the parser panic or hang, that
// failures are always a non-empty *Errors, and that a config that parses can
// be dumped.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdataDir, "*.yaml"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("routes: [{name: r, chain: [{x: &o {<<: *o}}]}]"))
	f.Add([]byte("listen: ${X:-${Y}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseEnv(data, "fuzz.yaml", lookupTestEnv)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
			}
			for _, e := range *errs {
				if e.Msg == "" {
					t.Fatalf("error without a message: %+v", e)
				}
			}
			return
		}
		if _, err := c.Redacted(); err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		for i := range c.Routes {
			for j := range c.Routes[i].Chain {
				var v any
				_ = c.Routes[i].Chain[j].DecodeOptions(c.File, &v)
			}
		}
	})
}

// FuzzExpandString checks that expansion never panics and leaves strings
// without a $ alone.
func FuzzExpandString(f *testing.F) {
	for _, s := range []string{"${A}", "$$", "${A:-b}", "${", "x$", "${A}${B:-}$$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, _ := expandString(s, lookupTestEnv)
		if !containsDollar(s) && out != s {
			t.Fatalf("expandString(%q) = %q without a $", s, out)
		}
	})
}

func containsDollar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '$' {
			return true
		}
	}
	return false
}
