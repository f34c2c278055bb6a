package guard_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// upstream is an OpenAI-compatible server that echoes: its answer is
// "echo: <last user message> max_tokens=<n>", plain or streamed a word per
// chunk; the message "leak" is answered with an API key split across two
// chunks.
func upstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
			Model     string `json:"model"`
			MaxTokens *int   `json:"max_tokens"`
			Stream    bool   `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		last := ""
		if n := len(req.Messages); n > 0 {
			last = req.Messages[n-1].Content
		}
		mt := -1
		if req.MaxTokens != nil {
			mt = *req.MaxTokens
		}
		parts := strings.SplitAfter(fmt.Sprintf("echo: %s max_tokens=%d model=%s", last, mt, req.Model), " ")
		if last == "leak" || last == "leak plain" {
			parts = []string{"here ", "it ", "is: ", "sk-abcdef", "ghijklmnop ", "and ", "more ", "text"}
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
				"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": strings.Join(parts, "")}, "finish_reason": "stop"}},
				"usage":   map[string]any{"prompt_tokens": 3, "completion_tokens": len(parts), "total_tokens": 3 + len(parts)}})
			w.Write(b)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i, p := range parts {
			b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
				"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
			fl.Flush()
			if i == 3 {
				time.Sleep(20 * time.Millisecond) // the split lands in separate reads
			}
		}
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprintf(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func hashKey(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }

func start(t *testing.T, stage string) string {
	t.Helper()
	abs, _ := filepath.Abs("testdata/rego")
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
log: {level: error, requests: false}
backends:
  - {name: up, url: "` + upstream(t) + `"}
models:
  - {name: m, targets: [{backend: up}]}
  - {name: m-small, targets: [{backend: up, model: small-v1}]}
  - {name: m-closed, targets: [{backend: up}]}
tenants: [{name: ok}, {name: blocked}]
keys:
  - {id: k1, sha256: ` + hashKey("sk-ok") + `, tenant: ok, models: [m, m-small]}
  - {id: k2, sha256: ` + hashKey("sk-blocked") + `, tenant: blocked}
routes:
  - name: default
    match: {model: "*"}
    chain:
      - ` + strings.ReplaceAll(stage, "POLICIES", abs) + `
`
	return gwtest.Start(t, cfg).URL
}

type answer struct {
	status int
	header http.Header
	body   string
}

func chat(t *testing.T, url, key, content string, stream bool) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"model": "m", "stream": stream, "messages": []any{map[string]any{"role": "user", "content": content}}})
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(body)}
}

const stage = "guard: {policies: POLICIES}"

func TestRequestDecisions(t *testing.T) {
	url := start(t, stage)
	a := chat(t, url, "sk-ok", "hello", false)
	if a.status != 200 || !strings.Contains(a.body, "echo: hello max_tokens=20") || a.header.Get("X-Switchyard-Policy-Tag") != "checked" {
		t.Fatalf("clean (capped at 20 tokens, tagged): %d %v %s", a.status, a.header, a.body)
	}
	a = chat(t, url, "sk-ok", "my key is sk-abcdefghijklmnop", false)
	if a.status != 400 || !strings.Contains(a.body, `"code":"content_policy_violation"`) || !strings.Contains(a.body, "policy secrets") || strings.Contains(a.body, "sk-abcdefghijklmnop") {
		t.Errorf("secret: %d %s", a.status, a.body)
	}
	a = chat(t, url, "sk-blocked", "hello", false)
	if a.status != 403 || !strings.Contains(a.body, "permission_error") || !strings.Contains(a.body, "policy access") {
		t.Errorf("access: %d %s", a.status, a.body)
	}
	a = chat(t, url, "sk-ok", "write to jane.doe@example.com and bob@corp.io please", false)
	if a.status != 200 || strings.Contains(a.body, "@") || strings.Count(a.body, "[EMAIL]") != 2 {
		t.Errorf("redaction: the upstream saw %s", a.body)
	}
	a = chat(t, url, "sk-ok", "answer with the small model", false)
	if a.status != 200 || !strings.Contains(a.body, "model=small-v1") {
		t.Errorf("route to m-small: %d %s", a.status, a.body)
	}
	a = chat(t, url, "sk-ok", "answer with the closed model", false)
	if a.status != 403 || !strings.Contains(a.body, "permission_error") || !strings.Contains(a.body, "m-closed") {
		t.Errorf("route to a pool the key may not use: %d %s", a.status, a.body)
	}
	a = chat(t, url, "sk-ok", "answer with the missing model", false)
	if a.status != 500 || !strings.Contains(a.body, "does not exist") {
		t.Errorf("route to no pool: %d %s", a.status, a.body)
	}
	a = chat(t, url, "sk-ok", "I need legal advice", false)
	if a.status != 403 || !strings.Contains(a.body, "review") {
		t.Errorf("review without a review stage: %d %s", a.status, a.body)
	}
}

func TestOutputChecks(t *testing.T) {
	url := start(t, stage)
	a := chat(t, url, "sk-ok", "leak plain", false)
	if a.status != 200 || strings.Contains(a.body, "sk-abcdef") || !strings.Contains(a.body, `"finish_reason":"content_filter"`) {
		t.Errorf("plain answer with a secret: %d %s", a.status, a.body)
	}
	// A stream whose secret is split across two chunks: none of it reaches
	// the client, and the stream ends the OpenAI way.
	a = chat(t, url, "sk-ok", "leak", true)
	var events []string
	sc := bufio.NewScanner(strings.NewReader(a.body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	if strings.Contains(a.body, "sk-") || len(events) < 2 || events[len(events)-1] != "[DONE]" ||
		!strings.Contains(events[len(events)-2], `"finish_reason":"content_filter"`) || strings.Contains(a.body, "more") {
		t.Errorf("stream with a split secret:\n%s", a.body)
	}
	// A clean stream passes whole, in order.
	a = chat(t, url, "sk-ok", "tell me a story about cats", true)
	var text strings.Builder
	for _, line := range strings.Split(a.body, "\n") {
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		json.Unmarshal([]byte(d), &c)
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if text.String() != "echo: tell me a story about cats max_tokens=20 model=m" || !strings.HasSuffix(strings.TrimSpace(a.body), "[DONE]") {
		t.Errorf("clean stream: %q\n%s", text.String(), a.body)
	}
}

func TestBadPoliciesAreConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		want  string
	}{
		"syntax":       {map[string]string{"d.rego": "package switchyard\n\ndecision := {\n"}, "d.rego:"},
		"failing test": {map[string]string{"d.rego": "package switchyard\n\ndecision := {\"allow\": true}\n", "d_test.rego": "package t\n\nimport data.switchyard\n\ntest_x if { not switchyard.decision.allow }\n"}, "Rego tests failed"},
		"shape":        {map[string]string{"d.rego": "package switchyard\n\ndecision := 7\n"}, "not an object"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for f, b := range c.files {
				os.WriteFile(filepath.Join(dir, f), []byte(b), 0o600)
			}
			cfg := `
listen: 127.0.0.1:0
backends:
  - {name: sim, kind: sim, sim: {model: m, profile: fast}}
models:
  - {name: m, targets: [{backend: sim}]}
routes:
  - name: default
    match: {model: "*"}
    chain:
      - guard: {policies: ` + dir + `}
`
			_, path, err := gwtest.New(t, cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path+":") {
				t.Errorf("error %v, want one with %q and the config's file:line", err, c.want)
			}
		})
	}
}

// TestBadReloadKeepsThePolicies: a reload whose policies fail their tests
// is refused, and the old policies keep deciding.
func TestBadReloadKeepsThePolicies(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/rego/decision.rego")
	tests, _ := os.ReadFile("testdata/rego/decision_test.rego")
	os.WriteFile(filepath.Join(dir, "decision.rego"), src, 0o600)
	os.WriteFile(filepath.Join(dir, "decision_test.rego"), tests, 0o600)
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
log: {level: error, requests: false}
backends:
  - {name: up, url: "` + upstream(t) + `"}
models:
  - {name: m, targets: [{backend: up}]}
tenants: [{name: ok}]
keys:
  - {id: k1, sha256: ` + hashKey("sk-ok") + `, tenant: ok}
routes:
  - name: default
    match: {model: "*"}
    chain:
      - guard: {policies: ` + dir + `}
`
	g := gwtest.Start(t, cfg)
	if a := chat(t, g.URL, "sk-ok", "key sk-abcdefghijklmnop", false); a.status != 400 {
		t.Fatalf("before: %d %s", a.status, a.body)
	}
	// The new policy no longer denies secrets, and its test says so wrongly.
	os.WriteFile(filepath.Join(dir, "decision.rego"), []byte(strings.Replace(string(src), "regex.match(`sk-[A-Za-z0-9]{12,}`, text)", "false", 1)), 0o600)
	if err := g.Srv.Reload(); err == nil || !strings.Contains(err.Error(), "Rego tests failed") {
		t.Fatalf("reload: %v, want refused for the failing Rego test", err)
	}
	if a := chat(t, g.URL, "sk-ok", "key sk-abcdefghijklmnop", false); a.status != 400 {
		t.Errorf("after the refused reload: %d %s (the old policies should still deny)", a.status, a.body)
	}
}

func TestDecisionLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	url := start(t, "guard: {policies: POLICIES, decision_log: "+path+"}")
	chat(t, url, "sk-ok", "my key is sk-abcdefghijklmnop", false)
	chat(t, url, "sk-ok", "mail bob@example.com", false)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// the denied request; the redacted one, then its answer's check
	if len(lines) != 3 || !strings.Contains(lines[0], `"allow":false`) || !strings.Contains(lines[0], `"policy":"secrets"`) ||
		!strings.Contains(lines[1], `"redactions":["pii"]`) || !strings.Contains(lines[2], `"phase":"response"`) {
		t.Fatalf("decision log:\n%s", b)
	}
	if strings.Contains(string(b), "sk-abcdefghijklmnop") || strings.Contains(string(b), "bob@example.com") {
		t.Errorf("the decision log holds the input:\n%s", b)
	}
}
