package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "0", want: 0},
		{in: " 2h ", want: 2 * time.Hour},
		{in: "30", wantErr: "missing unit"},
		{in: "1sec", wantErr: "want a number and a unit"},
		{in: "-1s", wantErr: "must not be negative"},
		{in: "", wantErr: "empty duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDuration(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.D() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.D(), err, tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{time.Minute, "1m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{10 * time.Minute, "10m"},
	}
	for _, tt := range tests {
		got := Duration(tt.in).String()
		if got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParseDuration(got)
		if err != nil || back.D() != tt.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back.D(), err, tt.in)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "4MiB", want: 4 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1MB", want: 1_000_000},
		{in: "1 GiB", want: 1 << 30},
		{in: "2tib", want: 2 << 40},
		{in: "100B", want: 100},
		{in: "1024", want: 1024},
		{in: "0", want: 0},
		{in: "-1", wantErr: "must not be negative"},
		{in: "1.5KiB", wantErr: "unknown unit"},
		{in: "4PB", wantErr: "unknown unit"},
		{in: "MiB", wantErr: "want bytes or a number with a unit"},
		{in: "99999999999999999999", wantErr: "too large"},
		{in: "9999999TiB", wantErr: "too large"},
		{in: "", wantErr: "empty size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || int64(got) != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1000, "1000"}, {1024, "1KiB"}, {4 << 20, "4MiB"}, {1536, "1536"}, {3 << 30, "3GiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
		}
	}
}

func TestStringList(t *testing.T) {
	tests := []struct {
		yaml    string
		want    []string
		wantErr string
	}{
		{yaml: `x: "gpt-*"`, want: []string{"gpt-*"}},
		{yaml: `x: [a, "b*"]`, want: []string{"a", "b*"}},
		{yaml: "x:\n  - a\n  - 7", want: []string{"a", "7"}},
		{yaml: `x: []`, want: []string{}},
		{yaml: `x:`, want: nil},
		{yaml: `x: {a: b}`, wantErr: "1:4: x: expected a string or a list of strings, got a mapping"},
		{yaml: `x: [a, [b]]`, wantErr: "1:8: x[1]: expected a string, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
				t.Fatal(err)
			}
			var got struct {
				X StringList `yaml:"x"`
			}
			err := DecodeStrict("f.yaml", "", &n, &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.X) != fmt.Sprint(tt.want) || (got.X == nil) != (tt.want == nil) {
				t.Fatalf("got %#v, want %#v", got.X, tt.want)
			}
			// Plain yaml.v3 decoding agrees.
			var plain struct {
				X StringList `yaml:"x"`
			}
			if err := yaml.Unmarshal([]byte(tt.yaml), &plain); err != nil || fmt.Sprint(plain.X) != fmt.Sprint(tt.want) {
				t.Fatalf("yaml.Unmarshal: got %#v, %v; want %#v", plain.X, err, tt.want)
			}
		})
	}
}

func TestSecretRedaction(t *testing.T) {
	s := Secret("sk-very-secret")
	forms := map[string]string{
		"String":    s.String(),
		"%v":        fmt.Sprintf("%v", s),
		"%s":        fmt.Sprintf("%s", s),
		"%#v":       fmt.Sprintf("%#v", s),
		"%+v":       fmt.Sprintf("%+v", struct{ K Secret }{s}),
		"json":      mustJSON(t, struct{ K Secret }{s}),
		"yaml":      mustYAML(t, struct{ K Secret }{s}),
		"Redacted":  redactedOf(t, &Config{Admin: Admin{Listen: "127.0.0.1:1", Token: s}, Backends: []Backend{{Name: "a", URL: "http://x", APIKey: s}}}),
		"Errors":    (&Errors{{Path: "admin.token", Msg: fmt.Sprint(s)}}).Error(),
		"MarshalTx": string(must(s.MarshalText())),
	}
	for name, got := range forms {
		if strings.Contains(got, "very-secret") {
			t.Errorf("%s shows the secret: %s", name, got)
		}
		if !strings.Contains(got, "[redacted]") {
			t.Errorf("%s does not say [redacted]: %s", name, got)
		}
	}
	if s.Value() != "sk-very-secret" {
		t.Errorf("Value() = %q", s.Value())
	}
	if Secret("").String() != "" {
		t.Errorf("empty secret prints %q, want \"\"", Secret("").String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func redactedOf(t *testing.T, c *Config) string {
	t.Helper()
	c.SetDefaults()
	b, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExpandString(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "N": "42"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-y", want: "x-alpha-y"},
		{in: "${A}${N}", want: "alpha42"},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-def}", want: "def"},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${A:-def}", want: "alpha"},
		{in: "${UNSET:-}", want: ""},
		{in: "${UNSET:-a:b/c}", want: "a:b/c"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "pa$$word", want: "pa$word"},
		{in: "cost $5", want: "cost $5"},
		{in: "trailing $", want: "trailing $"},
		{in: "${UNSET}", wantErr: "environment variable UNSET is not set"},
		{in: "${A", wantErr: "unterminated ${"},
		{in: "${}", wantErr: "invalid variable name \"\""},
		{in: "${1X}", wantErr: "invalid variable name \"1X\""},
		{in: "${A B}", wantErr: "invalid variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, errs := expandString(tt.in, lookup)
			if tt.wantErr != "" {
				if len(errs) == 0 || !strings.Contains(errs[0].msg, tt.wantErr) {
					t.Fatalf("expandString(%q) errors = %v, want %q", tt.in, errs, tt.wantErr)
				}
				return
			}
			if len(errs) > 0 || got != tt.want {
				t.Fatalf("expandString(%q) = %q, %v; want %q", tt.in, got, errs, tt.want)
			}
		})
	}
}

// TestExpandKeepsLines checks that expansion, even of values holding
// newlines, leaves the positions of later errors where they are in the file.
func TestExpandKeepsLines(t *testing.T) {
	env := map[string]string{"MULTI": "line1\nline2\nline3", "PORT": "9000", "YES": "true"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	src := `admin:
  listen: 127.0.0.1:${PORT}
  token: ${MULTI}
  insecure: ${YES}
server:
  max_conns: ${PORT}
  read_timeout: ${MISSING}
log:
  level: loud
`
	_, err := ParseEnv([]byte(src), "f.yaml", lookup)
	want := `f.yaml:7:17: server.read_timeout: environment variable MISSING is not set (use ${MISSING:-default} for a default)
f.yaml:9:10: log.level: unknown level "loud" (want debug, info, warn or error)`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}

	c, err := ParseEnv([]byte(strings.Replace(src, "${MISSING}", "1s", 1)+"  requests: true\n"), "f.yaml",
		func(k string) (string, bool) {
			if k == "MISSING" {
				return "", false
			}
			return lookup(k)
		})
	if err == nil {
		t.Fatal("want the log.level error")
	}
	_ = c
	src2 := strings.Replace(strings.Replace(src, "${MISSING}", "1s", 1), "loud", "warn", 1)
	c, err = ParseEnv([]byte(src2), "f.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.MaxConns != 9000 || !c.Admin.Insecure || c.Admin.Token.Value() != env["MULTI"] || c.Admin.Listen != "127.0.0.1:9000" {
		t.Fatalf("expanded values wrong: %+v %+v", c.Server, c.Admin)
	}
	// A quoted reference stays a string: an int field rejects it.
	_, err = ParseEnv([]byte("server:\n  max_conns: \"${PORT}\"\n"), "f.yaml", lookup)
	if err == nil || !strings.Contains(err.Error(), `f.yaml:2:14: server.max_conns: expected an integer, got "9000"`) {
		t.Fatalf("quoted ${PORT} into an int: got %v", err)
	}
}

func TestErrorsFormat(t *testing.T) {
	es := Errors{
		{File: "a.yaml", Line: 3, Column: 5, Path: "routes[0].to", Msg: "unknown model pool \"x\""},
		{File: "a.yaml", Line: 4, Path: "listen", Msg: "bad"},
		{File: "a.yaml", Msg: "invalid YAML"},
		{Path: "x", Msg: "no file"},
		{Line: 2, Msg: "line only"},
	}
	want := `a.yaml:3:5: routes[0].to: unknown model pool "x"
a.yaml:4: listen: bad
a.yaml: invalid YAML
x: no file
2: line only`
	if got := es.Error(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	data := []byte("backends:\n  - {name: s, kind: sim}\nmodels:\n  - {name: m, targets: [{backend: s}]}\n")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != p || string(c.Raw) != string(data) {
		t.Fatalf("File/Raw not kept: %q %q", c.File, c.Raw)
	}
	if c.Backends[0].Line != 2 || c.Models[0].Line != 4 || c.Routes[0].Name != "default" || c.Routes[0].Line != 0 {
		t.Fatalf("lines/default route wrong: %+v %+v %+v", c.Backends[0], c.Models[0], c.Routes)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	var errs *Errors
	if !errors.As(err, &errs) || (*errs)[0].File != p {
		t.Fatalf("bad YAML: got %T %v", err, err)
	}
}

// TestExplicitZeroKept checks that a key given as zero keeps zero while a
// key left out gets its default.
func TestExplicitZeroKept(t *testing.T) {
	src := `server:
  watch_interval: 0
  read_timeout: ~
  compression: {min_size: 0, enabled: false}
backends:
  - name: s
    kind: sim
    health: {failure_threshold: 0}
models:
  - name: m
    targets: [{backend: s, weight: 0}, {backend: s, model: other}]
    retry: {budget: 0, min_per_second: 0}
`
	c, err := ParseEnv([]byte(src), "z.yaml", lookupTestEnv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"watch_interval", c.Server.WatchInterval, Duration(0)},
		{"read_timeout (null = left out)", c.Server.ReadTimeout, DefaultReadTimeout},
		{"idle_timeout", c.Server.IdleTimeout, DefaultIdleTimeout},
		{"min_size", c.Server.Compression.MinSize, Size(0)},
		{"enabled", *c.Server.Compression.Enabled, false},
		{"failure_threshold", c.Backends[0].Health.FailureThreshold, 0},
		{"cooldown", c.Backends[0].Health.Cooldown, DefaultCooldown},
		{"weight 0", c.Models[0].Targets[0].Weight, 0},
		{"weight default", c.Models[0].Targets[1].Weight, 1},
		{"target model default", c.Models[0].Targets[0].Model, "m"},
		{"budget", c.Models[0].Retry.Budget, 0.0},
		{"min_per_second", c.Models[0].Retry.MinPerSecond, 0},
		{"attempts", c.Models[0].Retry.Attempts, DefaultRetryAttempts},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestGoBuiltConfig checks SetDefaults and Validate on a Config built in Go,
// where zero means left out and errors carry no positions.
func TestGoBuiltConfig(t *testing.T) {
	c := &Config{
		Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:8000"}},
		Models:   []Model{{Name: "m", Targets: []Target{{Backend: "a"}}, Fallbacks: []string{"n"}}},
		Routes:   []Route{{Name: "r", To: "m", Chain: []StageRef{{Kind: ""}}}},
	}
	c.SetDefaults()
	c.SetDefaults() // idempotent
	if c.Listen != DefaultListen || c.Backends[0].Kind != KindOpenAI || c.Models[0].Targets[0].Weight != 1 || c.Models[0].Retry.Attempts != 2 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	err := c.Validate()
	want := "models[0].fallbacks[0]: unknown model pool \"n\"\nroutes[0].chain[0]: empty stage name"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

type stageOpts struct {
	Collection string            `yaml:"collection"`
	TopK       int               `yaml:"top_k"`
	Timeout    Duration          `yaml:"timeout"`
	MaxBytes   Size              `yaml:"max_bytes"`
	Tags       StringList        `yaml:"tags"`
	Labels     map[string]string `yaml:"labels"`
	Weights    []float64         `yaml:"weights"`
	Extra      any               `yaml:"extra"`
	Inner      *struct {
		On bool `yaml:"on"`
	} `yaml:"inner"`
	Base `yaml:",inline"`
}

type Base struct {
	Priority uint8 `yaml:"priority"`
}

func TestDecodeStrict(t *testing.T) {
	src := `backends: [{name: s, kind: sim}]
models: [{name: m, targets: [{backend: s}]}]
routes:
  - name: r
    to: m
    chain:
      - plain
      - retrieval:
          collection: kb
          top_k: 4
          timeout: 2s
          max_bytes: 1KiB
          tags: x
          labels: {a: b}
          weights: [1, 2.5]
          extra: {anything: [1, 2]}
          inner: {on: true}
          priority: 7
      - retrieval:
          collection: [kb]
          top_k: four
          unknown: 1
          priority: 300
          inner: {on: maybe}
`
	c, err := ParseEnv([]byte(src), "s.yaml", lookupTestEnv)
	if err != nil {
		t.Fatal(err)
	}
	chain := c.Routes[0].Chain
	if chain[0].Kind != "plain" || chain[0].Options.Kind != 0 || chain[0].Path != "routes[0].chain[0]" || chain[0].Line != 7 {
		t.Fatalf("bare stage: %+v", chain[0])
	}
	var o stageOpts
	if err := chain[0].DecodeOptions(c.File, &o); err != nil {
		t.Fatalf("no options: %v", err)
	}
	if err := chain[1].DecodeOptions(c.File, &o); err != nil {
		t.Fatal(err)
	}
	if o.Collection != "kb" || o.TopK != 4 || o.Timeout.D() != 2*time.Second || o.MaxBytes != 1024 ||
		fmt.Sprint(o.Tags) != "[x]" || o.Labels["a"] != "b" || fmt.Sprint(o.Weights) != "[1 2.5]" ||
		o.Extra == nil || o.Inner == nil || !o.Inner.On || o.Priority != 7 {
		t.Fatalf("decoded: %+v", o)
	}
	err = chain[2].DecodeOptions(c.File, &stageOpts{})
	want := `s.yaml:20:23: routes[0].chain[2].retrieval.collection: expected a string, got a list
s.yaml:21:18: routes[0].chain[2].retrieval.top_k: expected an integer, got "four"
s.yaml:22:11: routes[0].chain[2].retrieval.unknown: unknown key "unknown"
s.yaml:23:21: routes[0].chain[2].retrieval.priority: integer 300 out of range
s.yaml:24:23: routes[0].chain[2].retrieval.inner.on: expected true or false, got "maybe"`
	var errs *Errors
	if !errors.As(err, &errs) || err.Error() != want {
		t.Fatalf("got %T:\n%v\nwant:\n%s", err, err, want)
	}
	if err := DecodeStrict("f", "p", &yaml.Node{}, 3); err == nil {
		t.Fatal("non-pointer accepted")
	}
}

func TestStageRefPlainYAML(t *testing.T) {
	var r struct {
		Chain []StageRef `yaml:"chain"`
	}
	if err := yaml.Unmarshal([]byte("chain: [a, {b: {x: 1}}]"), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Chain) != 2 || r.Chain[0].Kind != "a" || r.Chain[1].Kind != "b" || r.Chain[1].Options.Kind != yaml.MappingNode {
		t.Fatalf("got %+v", r.Chain)
	}
	if err := yaml.Unmarshal([]byte("chain: [{a: 1, b: 2}]"), &r); err == nil {
		t.Fatal("two-key stage accepted")
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	// Merge keys nest without limit in the Go types: each level merges the
	// one below ten times, 10^9 merges in all.
	b.WriteString("x: &a0 {read_timeout: 1s}\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]}\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("server: *a9\n")
	_, err := ParseEnv([]byte(b.String()), "bomb.yaml", lookupTestEnv)
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("want a size error, got %.300v", err)
	}
}

func TestErrorf(t *testing.T) {
	c, err := ParseEnv([]byte("routes:\n  - name: r\n    chain:\n      - ratelimit\n      - nope: {x: 1}\n"), "e.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"routes[0].chain[1]", `e.yaml:5:9: routes[0].chain[1]: unknown stage "nope"`},
		{"routes[0].chain[1].nope.x", `e.yaml:5:19: routes[0].chain[1].nope.x: unknown stage "nope"`},
		{"routes[0].chain[7]", `e.yaml:4:7: routes[0].chain[7]: unknown stage "nope"`},
		{"nothing.here", `e.yaml: nothing.here: unknown stage "nope"`},
	}
	for _, tt := range tests {
		es := Errors{c.Errorf(tt.path, "unknown stage %q", "nope")}
		if got := es.Error(); got != tt.want {
			t.Errorf("Errorf(%q) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

func TestParseKeyHash(t *testing.T) {
	const hex64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name, in, err string // err "" = parses
	}{
		{"lower", hex64, ""},
		{"upper", strings.ToUpper(hex64), ""},
		{"short", hex64[:4], "invalid SHA-256: want 64 hex digits, got 4 characters"},
		{"long", hex64 + "00", "invalid SHA-256: want 64 hex digits, got 66 characters"},
		{"not hex", "zz" + hex64[2:], "invalid SHA-256: want 64 hex digits (0-9, a-f), got other characters"},
		{"empty", "", "invalid SHA-256: want 64 hex digits, got 0 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := ParseKeyHash(tc.in)
			switch {
			case tc.err != "":
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseKeyHash(%q) error %v, want %s", tc.in, err, tc.err)
				}
			case err != nil:
				t.Fatalf("ParseKeyHash(%q): %v", tc.in, err)
			case fmt.Sprintf("%x", sum) != hex64:
				t.Fatalf("ParseKeyHash(%q) = %x", tc.in, sum)
			}
		})
	}
}

// TestHealthBreakerKeys checks the defaults and the validation of the
// outlier ejection and circuit breaker keys of backends[].health.
func TestHealthBreakerKeys(t *testing.T) {
	tests := []struct {
		name   string
		health string // the health block, in flow style
		want   Health // checked when err is ""
		err    string // a substring of the error
	}{
		{name: "defaults", health: `{}`, want: Health{FailureThreshold: 3, Cooldown: DefaultCooldown, MaxCooldown: DefaultMaxCooldown,
			MaxEjectedPercent: 50, HalfOpenRequests: 1, LatencyMin: DefaultLatencyMin, LatencyMinSamples: 5}},
		{name: "a long cooldown raises the default cap", health: `{cooldown: 10m}`, want: Health{FailureThreshold: 3, Cooldown: Duration(10 * time.Minute),
			MaxCooldown: Duration(10 * time.Minute), MaxEjectedPercent: 50, HalfOpenRequests: 1, LatencyMin: DefaultLatencyMin, LatencyMinSamples: 5}},
		{name: "all given", health: `{failure_threshold: 0, cooldown: 1s, max_cooldown: 1s, max_ejected_percent: 100, half_open_requests: 0,
			latency_factor: 3, latency_min: 0s, latency_min_samples: 1}`,
			want: Health{Cooldown: Duration(time.Second), MaxCooldown: Duration(time.Second), MaxEjectedPercent: 100,
				LatencyFactor: 3, LatencyMinSamples: 1}},
		{name: "cap below cooldown", health: `{cooldown: 1m, max_cooldown: 59s}`, err: "health.max_cooldown: must be at least cooldown (1m), got 59s"},
		{name: "percent 0", health: `{max_ejected_percent: 0}`, err: "health.max_ejected_percent: must be from 1 to 100, got 0"},
		{name: "percent above 100", health: `{max_ejected_percent: 150}`, err: "health.max_ejected_percent: must be from 1 to 100, got 150"},
		{name: "negative probes", health: `{half_open_requests: -2}`, err: "health.half_open_requests: must not be negative, got -2"},
		{name: "factor 1", health: `{latency_factor: 1}`, err: "health.latency_factor: must be 0 (off) or above 1, got 1"},
		{name: "negative factor", health: `{latency_factor: -3}`, err: "health.latency_factor: must be 0 (off) or above 1, got -3"},
		{name: "no samples", health: `{latency_min_samples: 0}`, err: "health.latency_min_samples: must be at least 1, got 0"},
		{name: "latency without a cooldown", health: `{failure_threshold: 0, cooldown: 0s, latency_factor: 2}`,
			err: "health.cooldown: must be positive while failure_threshold or latency_factor is above 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "backends:\n  - {name: s, kind: sim, health: " + tc.health + "}\nmodels: [{name: m, targets: [{backend: s}]}]\n"
			c, err := ParseEnv([]byte(src), "h.yaml", lookupTestEnv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), "h.yaml:2:") || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("health %s: error %v; want one at h.yaml:2 with %q", tc.health, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("health %s: %v", tc.health, err)
			}
			if got := c.Backends[0].Health; got != tc.want {
				t.Fatalf("health %s:\ngot  %+v\nwant %+v", tc.health, got, tc.want)
			}
		})
	}
}
