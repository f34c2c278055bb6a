// Package k6_test checks the k6 scripts in this directory without k6: node
// loads each one as an ES module with k6's modules stubbed (only the
// modules and names k6 documents resolve), checks its exports and
// thresholds, and runs one iteration against canned responses to see that
// its checks pass on a correct answer and fail on a broken one.
package k6_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var scripts = []string{"chat.js", "stream.js", "embeddings.js", "ratelimit.js", "cache.js"}

// allowedImports are k6's documented modules a script may use.
var allowedImports = []string{"k6", "k6/http", "k6/metrics", "k6/encoding", "k6/crypto", "k6/data", "k6/execution"}

type result struct {
	File       string              `json:"file"`
	Imports    []string            `json:"imports"`
	Exports    []string            `json:"exports"`
	Thresholds map[string][]string `json:"thresholds"`
	Checks     map[string]bool     `json:"checks"`
	Error      string              `json:"error"`
}

type response struct {
	Status  int               `json:"status"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers,omitempty"`
}

// runNode runs testdata/check.mjs on files, with canned responses if given.
func runNode(t *testing.T, responses map[string]response, files ...string) map[string]result {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the k6 scripts were not checked")
	}
	args := []string{"--experimental-vm-modules", "--no-warnings", "testdata/check.mjs"}
	if responses != nil {
		b, err := json.Marshal(responses)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "responses.json")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--responses", f)
	}
	cmd := exec.Command(node, append(args, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, stderr.String())
	}
	results := map[string]result{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("node output %q: %v", line, err)
		}
		results[filepath.Base(r.File)] = r
	}
	return results
}

func TestScriptsLoadAsModules(t *testing.T) {
	results := runNode(t, nil, scripts...)
	for _, s := range scripts {
		r, ok := results[s]
		if !ok {
			t.Errorf("%s: no result", s)
			continue
		}
		if r.Error != "" {
			t.Errorf("%s: %s", s, r.Error)
			continue
		}
		for _, imp := range r.Imports {
			if !slices.Contains(allowedImports, imp) {
				t.Errorf("%s imports %q, not one of k6's documented modules", s, imp)
			}
		}
		if len(r.Thresholds) == 0 {
			t.Errorf("%s has no thresholds, so k6 would exit 0 on any result", s)
		}
		for metric, rules := range r.Thresholds {
			if len(rules) == 0 {
				t.Errorf("%s: threshold on %s has no rules", s, metric)
			}
		}
		src, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range []string{"BASE_URL", "API_KEY", "MODEL"} {
			if !bytes.Contains(src, []byte("__ENV."+env)) {
				t.Errorf("%s does not read %s", s, env)
			}
		}
		if bytes.Contains(src, []byte("require(")) {
			t.Errorf("%s uses require(); k6 scripts here are ES modules", s)
		}
	}
	if _, ok := results["stream.js"].Thresholds["ttft"]; !ok {
		t.Error("stream.js has no threshold on its ttft Trend")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scripts {
		if !bytes.Contains(readme, []byte("k6 run loadtest/k6/"+s)) {
			t.Errorf("README.md lacks the command line for %s", s)
		}
	}
}

// TestCheckerRejects makes sure the checker itself catches what it claims to.
func TestCheckerRejects(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"syntax.js":    "import http from 'k6/http';\nexport const options = {thresholds: {checks: ['rate>0']}};\nexport default function () { let x = ; }\n",
		"module.js":    "import ws from 'k6/ws-nope';\nexport const options = {thresholds: {checks: ['rate>0']}};\nexport default function () {}\n",
		"relative.js":  "import x from './lib.js';\nexport const options = {thresholds: {checks: ['rate>0']}};\nexport default function () {}\n",
		"name.js":      "import { checkAll } from 'k6';\nexport const options = {thresholds: {checks: ['rate>0']}};\nexport default function () {}\n",
		"nodefault.js": "import { check } from 'k6';\nexport const options = {thresholds: {checks: ['rate>0']}};\n",
	}
	var files []string
	for name, src := range cases {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	results := runNode(t, nil, files...)
	for name := range cases {
		if r := results[name]; r.Error == "" {
			t.Errorf("%s: checker accepted a broken script: %+v", name, r)
		}
	}
}

func sse(events ...string) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("data: " + e + "\n\n")
	}
	return b.String()
}

const (
	chunk1    = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}],"usage":null}`
	chunk2    = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":null}`
	usageOnly = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`
	chatBody  = `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
	embBody   = `{"object":"list","model":"e","data":[` +
		`{"object":"embedding","index":0,"embedding":[0.1,0.2]},{"object":"embedding","index":1,"embedding":[0.1,0.2]},` +
		`{"object":"embedding","index":2,"embedding":[0.1,0.2]},{"object":"embedding","index":3,"embedding":[0.1,0.2]}],` +
		`"usage":{"prompt_tokens":12,"total_tokens":12}}`
	limitBody = `{"error":{"message":"rate limit exceeded","type":"rate_limit_exceeded","param":null,"code":"rate_limit_exceeded"}}`
)

func TestScriptChecks(t *testing.T) {
	sseHeaders := map[string]string{"Content-Type": "text/event-stream"}
	tests := []struct {
		name       string
		script     string
		resp       response
		wantFailed []string // checks that must fail; all others must pass
	}{
		{"chat ok", "chat.js", response{Status: 200, Body: chatBody}, nil},
		{"chat 500", "chat.js", response{Status: 500, Body: `{"error":{"message":"x","type":"server_error"}}`},
			[]string{"status is 200", "object is chat.completion", "has id, created, model", "first choice has an assistant message", "has usage"}},
		{"stream ok", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, usageOnly, "[DONE]")}, nil},
		{"stream without DONE", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, usageOnly)},
			[]string{"ends with data: [DONE]"}},
		{"stream not SSE", "stream.js", response{Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: chatBody},
			[]string{"content-type is text/event-stream", "every line is an SSE data line", "ends with data: [DONE]", "every chunk is JSON",
				"chunks are chat.completion.chunk with id and model", "first delta has role assistant", "a finish_reason is set", "usage chunk with choices []"}},
		{"stream without usage", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, "[DONE]")},
			[]string{"usage chunk with choices []"}},
		{"stream error event", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, `{"error":{"message":"boom"}}`, "[DONE]")},
			[]string{"chunks are chat.completion.chunk with id and model", "a finish_reason is set", "usage chunk with choices []", "no error event"}},
		{"embeddings ok", "embeddings.js", response{Status: 200, Body: embBody}, nil},
		{"embeddings short", "embeddings.js", response{Status: 200, Body: strings.Replace(embBody, `,{"object":"embedding","index":3,"embedding":[0.1,0.2]}`, "", 1)},
			[]string{"one embedding per input, in order"}},
		{"ratelimit 429", "ratelimit.js", response{Status: 429, Headers: map[string]string{"Retry-After": "2"}, Body: limitBody}, nil},
		{"ratelimit 429 without retry-after", "ratelimit.js", response{Status: 429, Body: limitBody}, []string{"429 has a numeric retry-after"}},
		{"cache hit", "cache.js", response{Status: 200, Headers: map[string]string{"X-Switchyard-Cache": "hit"}, Body: chatBody}, nil},
		{"cache no header", "cache.js", response{Status: 200, Body: chatBody}, []string{"x-switchyard-cache header present"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runNode(t, map[string]response{tc.script: tc.resp}, tc.script)[tc.script]
			if r.Error != "" {
				t.Fatalf("%s: %s", tc.script, r.Error)
			}
			if len(r.Checks) == 0 {
				t.Fatalf("%s ran no checks", tc.script)
			}
			for name, ok := range r.Checks {
				if want := !slices.Contains(tc.wantFailed, name); ok != want {
					t.Errorf("check %q passed=%v, want %v", name, ok, want)
				}
			}
			for _, name := range tc.wantFailed {
				if _, ok := r.Checks[name]; !ok {
					t.Errorf("check %q did not run; ran %v", name, r.Checks)
				}
			}
		})
	}
}
