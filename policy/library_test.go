package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
)

var updateCorpusResults = flag.Bool("update", false, "rewrite testdata/corpus-results.md")

const (
	libraryDir       = "rego"
	corpusFile       = "testdata/corpus.jsonl"
	corpusResults    = "testdata/corpus-results.md"
	minDetection     = 0.90
	maxFalsePositive = 0.05
)

// TestRegoLibrary runs every test_ rule under policy/rego with OPA's runner.
func TestRegoLibrary(t *testing.T) {
	ctx := context.Background()
	modules, store, err := tester.Load([]string{libraryDir}, nil)
	if err != nil {
		t.Fatalf("load %s: %v", libraryDir, err)
	}
	ch, err := tester.NewRunner().SetStore(store).Run(ctx, modules)
	if err != nil {
		t.Fatalf("run rego tests: %v", err)
	}
	var passed, failed, errored, skipped int
	for r := range ch {
		name := r.Package + "." + r.Name
		switch {
		case r.Error != nil:
			errored++
			t.Errorf("rego test %s: ERROR: %v", name, r.Error)
		case r.Skip:
			skipped++
		case r.Fail:
			failed++
			t.Errorf("rego test %s: FAIL (%s)", name, r.Location)
		default:
			passed++
		}
	}
	t.Logf("rego tests: %d passed, %d failed, %d errors, %d skipped", passed, failed, errored, skipped)
	if passed == 0 {
		t.Fatal("no rego tests ran")
	}
}

type corpusLine struct {
	Text     string `json:"text"`
	Category string `json:"category"`
	Expect   string `json:"expect"`
}

func loadCorpus(t testing.TB) []corpusLine {
	t.Helper()
	f, err := os.Open(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c corpusLine
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("%s:%d: %v", corpusFile, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func prepareDecision(t testing.TB) rego.PreparedEvalQuery {
	t.Helper()
	pq, err := rego.New(
		rego.Query("data.switchyard.decision"),
		rego.Load([]string{libraryDir}, nil),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return pq
}

func requestInput(text string) map[string]any {
	return map[string]any{
		"phase":          "request",
		"principal":      map[string]any{"key_id": "k1", "tenant": "acme", "groups": []any{"eng"}, "metadata": map[string]any{}},
		"route":          "default",
		"model":          "sim-chat",
		"operation":      "chat",
		"messages":       []any{map[string]any{"role": "user", "content": text}},
		"prompt":         text,
		"tools":          []any{},
		"metadata":       map[string]any{},
		"token_estimate": len(text) / 4,
	}
}

type decision struct {
	Allow  bool             `json:"allow"`
	Deny   []map[string]any `json:"deny"`
	Redact []map[string]any `json:"redact"`
	Review []map[string]any `json:"review"`
	Tags   []string         `json:"tags"`
}

func evalDecision(t testing.TB, pq rego.PreparedEvalQuery, input map[string]any) decision {
	t.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input))
	if err != nil {
		t.Fatalf("eval: %v", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		t.Fatalf("decision undefined: %v", rs)
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	var d decision
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decision shape: %v (%s)", err, raw)
	}
	return d
}

func expectationMet(expect string, d decision) bool {
	switch expect {
	case "deny":
		return !d.Allow && len(d.Deny) > 0
	case "redact":
		return len(d.Redact) > 0
	case "flag":
		return len(d.Tags) > 0 || len(d.Review) > 0
	case "pass":
		return d.Allow && len(d.Deny) == 0 && len(d.Redact) == 0 && len(d.Review) == 0 && len(d.Tags) == 0
	}
	return false
}

type catStats struct{ total, met int }

// TestCorpus evaluates data.switchyard.decision for every corpus line as a
// request-phase input and checks detection / false-positive rates.
func TestCorpus(t *testing.T) {
	pq := prepareDecision(t)
	lines := loadCorpus(t)
	stats := map[string]*catStats{}
	var misses []string
	for i, c := range lines {
		d := evalDecision(t, pq, requestInput(c.Text))
		s := stats[c.Category]
		if s == nil {
			s = &catStats{}
			stats[c.Category] = s
		}
		s.total++
		if expectationMet(c.Expect, d) {
			s.met++
		} else {
			tags := strings.Join(d.Tags, ",")
			misses = append(misses, fmt.Sprintf("line %d [%s expect %s] allow=%v deny=%d redact=%d tags=%s: %q",
				i+1, c.Category, c.Expect, d.Allow, len(d.Deny), len(d.Redact), tags, c.Text))
		}
	}
	cats := make([]string, 0, len(stats))
	for c := range stats {
		cats = append(cats, c)
	}
	sort.Strings(cats)

	var b strings.Builder
	fmt.Fprintf(&b, "# Guard policy corpus results\n\n")
	fmt.Fprintf(&b, "Generated by `go test ./policy/ -run TestCorpus -update` over %s (%d lines, request phase, default config).\n\n", corpusFile, len(lines))
	fmt.Fprintf(&b, "| category | lines | met expectation | rate | metric |\n|---|---:|---:|---:|---|\n")

	for _, c := range cats {
		s := stats[c]
		rate := float64(s.met) / float64(s.total)
		if c == "clean" {
			fp := 1 - rate
			fmt.Fprintf(&b, "| %s | %d | %d | %.3f | false-positive rate %.3f (max %.2f) |\n", c, s.total, s.met, rate, fp, maxFalsePositive)
			if fp > maxFalsePositive {
				t.Errorf("clean false-positive rate %.3f > %.2f", fp, maxFalsePositive)
			}
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | detection rate (min %.2f) |\n", c, s.total, s.met, rate, minDetection)
		if rate < minDetection {
			t.Errorf("category %s detection rate %.3f < %.2f", c, rate, minDetection)
		}
	}
	if len(misses) > 0 {
		fmt.Fprintf(&b, "\n## Lines not meeting their expectation (%d)\n\n", len(misses))
		for _, m := range misses {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(m, "|", "\\|"))
		}
	}
	t.Logf("\n%s", b.String())
	if len(lines) < 320 {
		t.Errorf("corpus has %d lines, want >= 320", len(lines))
	}
	if *updateCorpusResults {
		if err := os.WriteFile(filepath.FromSlash(corpusResults), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cleanPrompt1KB is ordinary support-chat prose of about 1 KB.
func cleanPrompt1KB() string {
	p := "Hi team, I'm putting together the quarterly planning notes for the platform group and would " +
		"like your help turning them into a readable summary. We shipped the new onboarding flow in " +
		"March, cut median page load by roughly a third, and retired two legacy services that nobody " +
		"had touched in years. The main risks for next quarter are hiring, because two engineers are " +
		"moving to the data team, and the database migration, which still needs a rollback plan that " +
		"the on-call rotation is comfortable with. Please write three short paragraphs: what went well, " +
		"what did not, and what we want to focus on next. Keep the tone friendly but direct, avoid " +
		"jargon where a plain word works, and do not invent numbers that are not in my notes. If " +
		"something is ambiguous, list it as an open question at the end instead of guessing. The " +
		"audience is the wider engineering organisation plus a few people from product and support, " +
		"so assume they know the product but not our internal tooling. A short title would be nice too, " +
		"something better than quarterly update. Thanks a lot for the help with this, it is much appreciated!"
	for len(p) < 1024 {
		p += " Thanks again."
	}
	return p[:1024]
}

func BenchmarkDecision1KB(b *testing.B) {
	b.Run("clean", func(b *testing.B) { benchDecision(b, cleanPrompt1KB(), "pass") })
	// digits, an email and a phone number in every line: every detector's
	// gate opens and the pii policy redacts
	pii := strings.Repeat("Order 4412 shipped on 2026-11-03 to jane@example.com, call +44 20 7946 0958. ", 14)[:1024]
	b.Run("pii", func(b *testing.B) { benchDecision(b, pii, "redact") })
}

func benchDecision(b *testing.B, prompt, want string) {
	pq := prepareDecision(b)
	input := requestInput(prompt)
	ctx := context.Background()
	if d := evalDecision(b, pq, input); !expectationMet(want, d) {
		b.Fatalf("benchmark prompt does not %s: %+v", want, d)
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rs, err := pq.Eval(ctx, rego.EvalInput(input))
		durs = append(durs, time.Since(start))
		if err != nil || len(rs) != 1 {
			b.Fatalf("eval: %v %v", rs, err)
		}
	}
	b.StopTimer()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	p50 := durs[len(durs)/2]
	p99 := durs[len(durs)*99/100]
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
}
