package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePolicies(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const okDecision = `package switchyard

decision := {"allow": count(deny) == 0, "deny": deny, "redact": redact, "tags": tags}

deny contains {"policy": "secrets", "kind": "content", "reason": "the prompt holds a secret"} if contains(input.prompt, "sk-")

redact contains {"policy": "pii", "text": m, "replacement": "[EMAIL]"} if some m in regex.find_n("[a-z]+@[a-z]+\\.com", input.prompt, -1)

tags contains "checked"
`

func TestEngineDecisions(t *testing.T) {
	dir := writePolicies(t, map[string]string{"d.rego": okDecision, "d_test.rego": `package switchyard_test

import data.switchyard

test_secret if { not switchyard.decision.allow with input as {"prompt": "sk-123"} }
`})
	e, err := Load(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Eval(context.Background(), &Input{Phase: "request", Prompt: "mail bob@example.com and sk-abc"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Deny) != 1 || d.Deny[0].Kind != "content" || len(d.Redact) != 1 || d.Redact[0].Text != "bob@example.com" || len(d.Tags) != 1 {
		t.Fatalf("decision %+v", d)
	}
}

func TestEngineRejects(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		want  string
	}{
		"syntax":         {map[string]string{"bad.rego": "package switchyard\n\ndecision := {\n"}, "bad.rego:"},
		"failing test":   {map[string]string{"d.rego": okDecision, "d_test.rego": "package t\n\nimport data.switchyard\n\ntest_wrong if { switchyard.decision.allow with input as {\"prompt\": \"sk-1\"} }\n"}, "d_test.rego:5: data.t.test_wrong failed"},
		"shape":          {map[string]string{"d.rego": "package switchyard\n\ndecision := {\"allow\": \"yes\"}\n"}, `no boolean "allow"`},
		"unknown key":    {map[string]string{"d.rego": "package switchyard\n\ndecision := {\"allow\": true, \"colour\": 1}\n"}, `unknown key "colour"`},
		"allow and deny": {map[string]string{"d.rego": "package switchyard\n\ndecision := {\"allow\": true, \"deny\": [{\"policy\": \"p\", \"kind\": \"content\", \"reason\": \"r\"}]}\n"}, "exactly when"},
		"undefined":      {map[string]string{"d.rego": "package other\n\nx := 1\n"}, "undefined"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(context.Background(), Options{Dir: writePolicies(t, c.files)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one with %q", err, c.want)
			}
		})
	}
}

// BenchmarkEngineEval is the guard's evaluation of the default library on
// a 1 KB clean prompt, through Engine.Eval (the input built as an OPA
// value), as the stage runs it.
func BenchmarkEngineEval(b *testing.B) {
	e, err := Load(context.Background(), Options{Dir: "rego", SkipTests: true})
	if err != nil {
		b.Fatal(err)
	}
	prompt := strings.Repeat("Please summarise the quarterly report for the sales team and list the main risks. ", 13)[:1024]
	in := &Input{Phase: "request", Route: "default", Model: "m", Operation: "chat", Prompt: prompt,
		Messages: []Message{{Role: "user", Content: prompt}}, TokenEstimate: 300,
		Principal: &Principal{KeyID: "k", Tenant: "t"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
