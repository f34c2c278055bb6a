// Package k6_test checks the k6 scripts in this directory without k6: node
// loads each one as an ES module with k6's modules stubbed (only the
// modules and names k6 documents resolve), checks its exports and
// thresholds, and runs one iteration against canned responses to see that
// its checks pass on a correct answer and fail on a broken one.
package k6_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	File             string                     `json:"file"`
	Imports          []string                   `json:"imports"`
	Exports          []string                   `json:"exports"`
	Thresholds       map[string][]string        `json:"thresholds"`
	Checks           map[string]bool            `json:"checks"`
	ThresholdResults map[string]thresholdResult `json:"thresholdResults"`
	Error            string                     `json:"error"`
}

// thresholdResult is one threshold evaluated over a recorded run: how many
// samples its metric had and whether each rule passed.
type thresholdResult struct {
	Samples int             `json:"samples"`
	Rules   map[string]bool `json:"rules"`
}

type response struct {
	Status  int               `json:"status"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers,omitempty"`
}

// run is a recorded test run for check.mjs: the answers to setup's
// requests, then one iteration per response, in a scenario.
type run struct {
	Env        map[string]string `json:"env,omitempty"`
	Setup      []response        `json:"setup,omitempty"`
	Iterations []iteration       `json:"iterations"`
}

type iteration struct {
	Scenario string   `json:"scenario,omitempty"`
	Response response `json:"response"`
}

// envRequireNode names the environment variable that, when 1 or true, makes
// these tests fail instead of skip without node. .ci/run sets it.
const envRequireNode = "SWITCHYARD_REQUIRE_NODE"

// runNode runs testdata/check.mjs on files, with canned responses (a
// response or a run per script) if given.
func runNode(t *testing.T, responses map[string]any, files ...string) map[string]result {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		switch strings.ToLower(strings.TrimSpace(os.Getenv(envRequireNode))) {
		case "1", "true", "yes":
			t.Fatalf("%s is set, but node is not installed: the k6 scripts cannot be checked", envRequireNode)
		}
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
	chunk2    = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}],"usage":null}`
	finish    = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`
	usageOnly = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`
	chatBody  = `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
	embBody   = `{"object":"list","model":"e","data":[` +
		`{"object":"embedding","index":0,"embedding":[0.1,0.2]},{"object":"embedding","index":1,"embedding":[0.1,0.2]},` +
		`{"object":"embedding","index":2,"embedding":[0.1,0.2]},{"object":"embedding","index":3,"embedding":[0.1,0.2]}],` +
		`"usage":{"prompt_tokens":12,"total_tokens":12}}`
	limitBody = `{"error":{"message":"rate limit exceeded","type":"rate_limit_exceeded","param":null,"code":"rate_limit_exceeded"}}`
	// upstreamLimitBody is a 429 the simulator sends for its random
	// rate-limit fault: an OpenAI error, but not the gateway limiter's.
	upstreamLimitBody = `{"error":{"message":"simulated rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
)

// limiterHeaders are the headers of the gateway limiter's 429s.
var limiterHeaders = map[string]string{"Retry-After": "1", "X-Ratelimit-Limit-Requests": "10", "X-Ratelimit-Remaining-Requests": "0"}

func without(h map[string]string, name string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if k != name {
			out[k] = v
		}
	}
	return out
}

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
		{"stream ok", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, finish, usageOnly, "[DONE]")}, nil},
		{"stream without DONE", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, finish, usageOnly)},
			[]string{"ends with data: [DONE]"}},
		{"stream not SSE", "stream.js", response{Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: chatBody},
			[]string{"content-type is text/event-stream", "every line is an SSE field line", "ends with data: [DONE]", "every chunk is JSON",
				"chunks are chat.completion.chunk with id and model", "first delta has role assistant", "a finish_reason is set", "usage chunk with choices []"}},
		{"stream without usage", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, chunk2, finish, "[DONE]")},
			[]string{"usage chunk with choices []"}},
		{"stream error event", "stream.js", response{Status: 200, Headers: sseHeaders, Body: sse(chunk1, `{"error":{"message":"boom"}}`, "[DONE]")},
			[]string{"chunks are chat.completion.chunk with id and model", "a finish_reason is set", "usage chunk with choices []", "no error event"}},
		{"stream with event, id, retry and comment lines", "stream.js", response{Status: 200, Headers: sseHeaders,
			Body: ": keep-alive\n\nretry: 1000\n\nevent: message\nid: 1\ndata: " + chunk1 + "\n\nid: 2\ndata: " + chunk2 + "\n\n" + sse(finish, usageOnly, "[DONE]")}, nil},
		{"stream with an unknown field", "stream.js", response{Status: 200, Headers: sseHeaders, Body: "foo: bar\n\n" + sse(chunk1, finish, usageOnly, "[DONE]")},
			[]string{"every line is an SSE field line", "ends with data: [DONE]", "every chunk is JSON",
				"chunks are chat.completion.chunk with id and model", "first delta has role assistant", "a finish_reason is set", "usage chunk with choices []"}},
		{"stream with CR line ends", "stream.js", response{Status: 200, Headers: sseHeaders, Body: strings.ReplaceAll(sse(chunk1, chunk2, finish, usageOnly, "[DONE]"), "\n", "\r")}, nil},
		{"embeddings ok", "embeddings.js", response{Status: 200, Body: embBody}, nil},
		{"embeddings short", "embeddings.js", response{Status: 200, Body: strings.Replace(embBody, `,{"object":"embedding","index":3,"embedding":[0.1,0.2]}`, "", 1)},
			[]string{"one embedding per input, in order"}},
		{"ratelimit 429", "ratelimit.js", response{Status: 429, Headers: limiterHeaders, Body: limitBody}, nil},
		{"ratelimit 429 without retry-after", "ratelimit.js", response{Status: 429, Headers: without(limiterHeaders, "Retry-After"), Body: limitBody},
			[]string{"429 has a numeric retry-after"}},
		{"ratelimit upstream 429", "ratelimit.js", response{Status: 429, Headers: map[string]string{"Retry-After": "1"}, Body: upstreamLimitBody},
			[]string{"429 has x-ratelimit-limit-requests", "429 has x-ratelimit-remaining-requests 0"}},
		{"ratelimit 429 with another code", "ratelimit.js", response{Status: 429, Headers: limiterHeaders, Body: strings.Replace(limitBody, `"code":"rate_limit_exceeded"`, `"code":null`, 1)},
			[]string{"429 error code is rate_limit_exceeded"}},
		{"cache hit", "cache.js", response{Status: 200, Headers: map[string]string{"X-Switchyard-Cache": "hit"}, Body: chatBody}, nil},
		{"cache no header", "cache.js", response{Status: 200, Body: chatBody}, []string{"x-switchyard-cache header present"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runNode(t, map[string]any{tc.script: tc.resp}, tc.script)[tc.script]
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

// repeat returns n iterations of scenario, with responses from f(i).
func repeat(n int, scenario string, f func(i int) response) []iteration {
	its := make([]iteration, n)
	for i := range its {
		its[i] = iteration{Scenario: scenario, Response: f(i)}
	}
	return its
}

func chatAnswer(id, content string, hdr map[string]string) response {
	return response{Status: 200, Headers: hdr, Body: `{"id":"` + id + `","object":"chat.completion","created":1,"model":"m",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"` + content + `"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`}
}

// TestThresholdsNeedTheFeature runs ratelimit.js and cache.js through
// recorded runs and evaluates their thresholds as k6 would: they pass
// against the feature and fail when it is absent or faked.
func TestThresholdsNeedTheFeature(t *testing.T) {
	ok200 := func(int) response { return response{Status: 200, Body: chatBody} }
	limiter429 := response{Status: 429, Headers: limiterHeaders, Body: limitBody}
	upstream429 := response{Status: 429, Headers: map[string]string{"Retry-After": "1"}, Body: upstreamLimitBody}
	// With the defaults LIMIT=10 and RATE=30, the over phase expects about
	// 2/3 of 429s and 1/3 of passes.
	overLimited := func(i int) response {
		if i%3 == 0 {
			return response{Status: 200, Body: chatBody}
		}
		return limiter429
	}
	// Random 429s on half the requests: above the over phase's expected
	// share, so only the under phase and the signature catch them.
	randomly := func(r response) func(int) response {
		return func(i int) response {
			if i%2 == 1 {
				return r
			}
			return response{Status: 200, Body: chatBody}
		}
	}
	concat := func(parts ...[]iteration) []iteration {
		var out []iteration
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	// cache.js: setup warms PROMPTS=5 prompts; iteration i asks prompt i%5.
	misses := make([]response, 5)
	for i := range misses {
		misses[i] = chatAnswer(fmt.Sprintf("miss-%d", i), fmt.Sprintf("answer %d", i), map[string]string{"X-Switchyard-Cache": "miss"})
	}
	hit := map[string]string{"X-Switchyard-Cache": "hit"}

	tests := []struct {
		name   string
		script string
		run    run
		// failing lists "metric: rule" of the thresholds that must fail;
		// all others must pass.
		failing []string
	}{
		{"ratelimit against a limiter", "ratelimit.js", run{Iterations: concat(
			repeat(10, "under", ok200), repeat(30, "over", overLimited))}, nil},
		{"ratelimit against random upstream 429s", "ratelimit.js", run{Iterations: concat(
			repeat(10, "under", randomly(upstream429)), repeat(30, "over", randomly(upstream429)))},
			[]string{"rate_limited{phase:under}: rate==0", "checks{kind:limited}: rate==1"}},
		{"ratelimit against random 429s with the limiter's headers", "ratelimit.js", run{Iterations: concat(
			repeat(10, "under", randomly(limiter429)), repeat(30, "over", randomly(limiter429)))},
			[]string{"rate_limited{phase:under}: rate==0"}},
		{"ratelimit without a limiter", "ratelimit.js", run{Iterations: concat(
			repeat(10, "under", ok200), repeat(30, "over", ok200))},
			[]string{"rate_limited{phase:over}: rate>=0.33333333333333337", "limited_responses: count>0"}},
		{"ratelimit without the under phase", "ratelimit.js", run{Iterations: repeat(30, "over", overLimited)},
			[]string{"under_phase: rate>0"}},
		{"cache against a cache", "cache.js", run{Setup: misses, Iterations: repeat(20, "repeat", func(i int) response {
			r := misses[i%5]
			r.Headers = hit
			return r
		})}, nil},
		{"cache against a stage that only stamps hit", "cache.js", run{Setup: misses, Iterations: repeat(20, "repeat", func(i int) response {
			return chatAnswer(fmt.Sprintf("fresh-%d", i), fmt.Sprintf("answer %d", i%5), hit)
		})}, []string{"checks{kind:hit}: rate==1", "checks: rate>0.99"}},
		{"cache with a hit that answers another prompt", "cache.js", run{Setup: misses, Iterations: repeat(20, "repeat", func(i int) response {
			r := misses[(i+1)%5]
			r.Headers = hit
			return r
		})}, []string{"checks{kind:hit}: rate==1", "checks: rate>0.99"}},
		{"cache without hits", "cache.js", run{Setup: misses, Iterations: repeat(20, "repeat", func(i int) response {
			return chatAnswer(fmt.Sprintf("fresh-%d", i), "x", map[string]string{"X-Switchyard-Cache": "miss"})
		})}, []string{"cache_hit: rate>=0.9", "cache_hits: count>0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runNode(t, map[string]any{tc.script: tc.run}, tc.script)[tc.script]
			if r.Error != "" {
				t.Fatalf("%s: %s", tc.script, r.Error)
			}
			if len(r.ThresholdResults) != len(r.Thresholds) {
				t.Fatalf("evaluated %d thresholds, the script has %d", len(r.ThresholdResults), len(r.Thresholds))
			}
			failed := failedThresholds(r)
			want := slices.Sorted(slices.Values(tc.failing))
			if !slices.Equal(failed, want) {
				t.Errorf("failing thresholds = %q, want %q\nresults: %+v", failed, want, r.ThresholdResults)
			}
		})
	}
}

// failedThresholds lists r's failing thresholds as "metric: rule", sorted.
func failedThresholds(r result) []string {
	var failed []string
	for metric, tr := range r.ThresholdResults {
		for rule, ok := range tr.Rules {
			if !ok {
				failed = append(failed, metric+": "+rule)
			}
		}
	}
	slices.Sort(failed)
	return failed
}
