package retrieval_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"switchyard/internal/gwtest"
	"switchyard/internal/spectest"
	"switchyard/internal/testsvc"
)

// The keys of the tests: acme-hr is in tenant acme and group hr, acme-eng
// in acme and group eng, globex in tenant globex.
var testKeys = map[string]string{"acme-hr": "sk-acme-hr", "acme-eng": "sk-acme-eng", "globex": "sk-globex"}

func keyHash(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }

// writeDocs writes the test corpus: a public page, one for acme only, one
// for acme's hr group.
func writeDocs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"public/routing.md":   "# Routing\n\nA route sends requests to a model pool. Outlier ejection removes a failing backend for a cool-down.\n",
		"acme/roadmap.md":     "# Roadmap\n\nThe zebrafish project ships in the third quarter for acme.\n",
		"acme-hr/salaries.md": "# Salaries\n\nThe quokka bonus is paid to every employee in March.\n",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ragConfig(docs, dataDir string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
data_dir: %s
backends: [{name: sim, kind: sim, sim: {model: sim-chat, embed-model: sim-embed, profile: fast, output-len: "30"}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
keys:
  - {id: acme-hr, sha256: %s, tenant: acme, metadata: {groups: "hr,staff"}}
  - {id: acme-eng, sha256: %s, tenant: acme, metadata: {groups: eng}}
  - {id: globex, sha256: %s, tenant: globex}
collections:
  - name: docs
    sources:
      - {path: %s/public, metadata: {kind: public}}
      - {path: %s/acme, acl: {tenants: [acme]}}
      - {path: %s/acme-hr, acl: {tenants: [acme], groups: [hr]}}
routes:
  - name: rag
    match: {model: sim-chat-rag}
    to: sim-chat
    chain: [{retrieval: {collection: docs, top_k: 3, mode: keyword, min_score: 0.1}}]
  - name: default
`, dataDir, keyHash(testKeys["acme-hr"]), keyHash(testKeys["acme-eng"]), keyHash(testKeys["globex"]), docs, docs, docs)
}

type chatAnswer struct {
	status  int
	sources []string
	body    []byte
	reqID   string
}

func chat(t *testing.T, base, key, question string, stream bool) chatAnswer {
	t.Helper()
	body := fmt.Sprintf(`{"model":"sim-chat-rag","stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, question)
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := chatAnswer{status: resp.StatusCode, body: b, reqID: resp.Header.Get("x-request-id")}
	if h := resp.Header.Get("x-switchyard-sources"); h != "" {
		for _, s := range strings.Split(h, ",") {
			id, err := url.QueryUnescape(s)
			if err != nil {
				t.Fatalf("x-switchyard-sources %q: %v", h, err)
			}
			a.sources = append(a.sources, id)
		}
	}
	return a
}

// TestStageACLAndCitations: each caller is grounded only in what its ACL
// admits, and the answer cites the sources in standard fields.
func TestStageACLAndCitations(t *testing.T) {
	docs := writeDocs(t)
	g := gwtest.Start(t, ragConfig(docs, t.TempDir()))
	cases := []struct {
		key, question string
		want          string // the document expected first; "" for hidden
		hidden        string // a document that must not be a source
	}{
		{"acme-hr", "when is the quokka bonus paid", "acme-hr/salaries.md", ""},
		{"acme-eng", "when is the quokka bonus paid", "", "acme-hr/"}, // not in hr
		{"globex", "when is the quokka bonus paid", "", "acme"},
		{"acme-eng", "when does zebrafish ship", "acme/roadmap.md", "acme-hr/"},
		{"globex", "when does zebrafish ship", "", "acme"},
		{"globex", "what does outlier ejection do", "public/routing.md", "acme"},
	}
	for _, c := range cases {
		a := chat(t, g.URL, testKeys[c.key], c.question, false)
		if a.status != 200 {
			t.Fatalf("%s %q: %d %s", c.key, c.question, a.status, a.body)
		}
		spectest.Check(t, "CreateChatCompletionResponse", a.body)
		var r struct {
			Choices []struct {
				Message struct {
					Content     string `json:"content"`
					Annotations []struct {
						Type        string `json:"type"`
						URLCitation struct {
							Start int    `json:"start_index"`
							End   int    `json:"end_index"`
							URL   string `json:"url"`
							Title string `json:"title"`
						} `json:"url_citation"`
					} `json:"annotations"`
				} `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatal(err)
		}
		msg := r.Choices[0].Message
		for _, s := range a.sources {
			if c.hidden != "" && strings.HasPrefix(s, c.hidden) {
				t.Errorf("%s %q: a source outside its ACL: %s", c.key, c.question, s)
			}
		}
		for _, an := range msg.Annotations {
			if c.hidden != "" && strings.Contains(an.URLCitation.URL, url.PathEscape(c.hidden)) {
				t.Errorf("%s %q: a citation outside its ACL: %s", c.key, c.question, an.URLCitation.URL)
			}
		}
		if c.want == "" {
			continue
		}
		if len(a.sources) == 0 || !strings.HasPrefix(a.sources[0], c.want+"#") {
			t.Fatalf("%s %q: sources %v, want %s first", c.key, c.question, a.sources, c.want)
		}
		if len(msg.Annotations) == 0 {
			t.Fatalf("%s %q: no annotations in %s", c.key, c.question, a.body)
		}
		runes := []rune(msg.Content)
		for _, an := range msg.Annotations {
			u := an.URLCitation
			if an.Type != "url_citation" || u.Start < 0 || u.End > len(runes) || runes[u.Start] != '[' || runes[u.End-1] != ']' {
				t.Errorf("annotation %+v does not span a marker of %q", an, msg.Content)
			}
			if !strings.Contains(u.URL, "/v1/vector_stores/docs/files/") || u.Title == "" {
				t.Errorf("annotation %+v: want a link to the document's content and a title", an)
			}
		}
	}
}

// TestStageStream: the final delta carries the annotations; the chunks
// conform to the spec.
func TestStageStream(t *testing.T) {
	docs := writeDocs(t)
	g := gwtest.Start(t, ragConfig(docs, t.TempDir()))
	a := chat(t, g.URL, testKeys["globex"], "what does outlier ejection do", true)
	if a.status != 200 || len(a.sources) == 0 {
		t.Fatalf("%d, sources %v: %s", a.status, a.sources, a.body)
	}
	var text strings.Builder
	annotated := 0
	sc := bufio.NewScanner(strings.NewReader(string(a.body)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(line))
		var ch struct {
			Choices []struct {
				Delta struct {
					Content     string            `json:"content"`
					Annotations []json.RawMessage `json:"annotations"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			t.Fatal(err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
			if len(c.Delta.Annotations) > 0 {
				annotated++
				if c.FinishReason == nil {
					t.Errorf("annotations before the final delta: %s", line)
				}
			}
		}
	}
	if annotated != 1 || !strings.Contains(text.String(), "[1]") {
		t.Errorf("%d chunks with annotations (want 1), text %q", annotated, text.String())
	}
}

// TestStageAuditAndReload: the sources given are recorded by request id;
// a reload brings the collection in step with its changed sources.
func TestStageAuditAndReload(t *testing.T) {
	docs := writeDocs(t)
	g := gwtest.Start(t, ragConfig(docs, t.TempDir()))
	a := chat(t, g.URL, testKeys["acme-hr"], "when is the quokka bonus paid", false)
	if len(a.sources) == 0 {
		t.Fatalf("no sources: %s", a.body)
	}
	resp, err := http.Get(g.Admin + "/admin/retrieval/audit?request_id=" + url.QueryEscape(a.reqID))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rec struct {
		Collection string `json:"collection"`
		Sources    []struct {
			ChunkID string `json:"chunk_id"`
		} `json:"sources"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &rec) != nil || rec.Collection != "docs" || len(rec.Sources) != len(a.sources) || rec.Sources[0].ChunkID != a.sources[0] {
		t.Fatalf("audit: %d %s (sources %v)", resp.StatusCode, b, a.sources)
	}
	if strings.Contains(string(b), "quokka") || !strings.Contains(string(b), `"query_sha256":"`) {
		t.Errorf("the audit record holds the query's text, or no hash of it: %s", b)
	}
	if resp, _ := http.Get(g.Admin + "/admin/retrieval/audit?request_id=nope"); resp.StatusCode != 404 {
		t.Errorf("unknown request id: %d", resp.StatusCode)
	}

	// A new page, and the hr page gone.
	if err := os.WriteFile(filepath.Join(docs, "public", "wombat.md"), []byte("# Wombats\n\nThe wombat cache warms every morning.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(docs, "acme-hr", "salaries.md")); err != nil {
		t.Fatal(err)
	}
	if err := g.Srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if a := chat(t, g.URL, testKeys["globex"], "when does the wombat cache warm", false); len(a.sources) == 0 || !strings.HasPrefix(a.sources[0], "public/wombat.md#") {
		t.Errorf("after the reload, the new page: sources %v", a.sources)
	}
	for _, s := range chat(t, g.URL, testKeys["acme-hr"], "when is the quokka bonus paid", false).sources {
		if strings.HasPrefix(s, "acme-hr/") {
			t.Errorf("after the reload, the removed page is still a source: %v", s)
		}
	}
}

// TestStageGoSDK: the official Go SDK reads the annotations.
func TestStageGoSDK(t *testing.T) {
	docs := writeDocs(t)
	g := gwtest.Start(t, ragConfig(docs, t.TempDir()))
	c := openai.NewClient(option.WithBaseURL(g.URL+"/v1"), option.WithAPIKey(testKeys["globex"]), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "sim-chat-rag",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what does outlier ejection do")},
	})
	if err != nil {
		t.Fatal(err)
	}
	anns := resp.Choices[0].Message.Annotations
	if len(anns) == 0 || anns[0].URLCitation.URL == "" || anns[0].URLCitation.EndIndex <= anns[0].URLCitation.StartIndex {
		t.Fatalf("annotations through the SDK: %+v (content %q)", anns, resp.Choices[0].Message.Content)
	}
}

// TestStageConfigErrors: a stage on an unknown collection, or with bad
// settings, is refused with the stage's YAML place.
func TestStageConfigErrors(t *testing.T) {
	docs := writeDocs(t)
	base := ragConfig(docs, t.TempDir())
	for name, c := range map[string]struct{ from, to, want string }{
		"unknown collection": {"collection: docs, top_k", "collection: nope, top_k", `unknown collection "nope"`},
		"bad mode":           {"mode: keyword", "mode: fuzzy", `unknown mode "fuzzy"`},
		"bad top_k":          {"top_k: 3", "top_k: 500", "top_k"},
		"missing source":     {docs + "/public,", docs + "/nothing-here,", "nothing-here"},
	} {
		cfg := strings.Replace(base, c.from, c.to, 1)
		if cfg == base {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		_, _, err := gwtest.New(t, cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "switchyard.yaml:") {
			t.Errorf("%s: %v; want an error with %q and the file's line", name, err, c.want)
		}
	}
}

// TestPoolEmbedder: a collection embedded by a model pool is filled in the
// background through the gateway (the pool batches the calls) and searched
// with its vectors.
func TestPoolEmbedder(t *testing.T) {
	docs := writeDocs(t)
	g := gwtest.Start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
data_dir: %s
backends: [{name: sim, kind: sim, sim: {model: sim-chat, embed-model: sim-embed, embed-dim: 64, profile: fast}}]
models:
  - {name: sim-chat, targets: [{backend: sim}]}
  - {name: sim-embed, targets: [{backend: sim}], batching: {max_batch_size: 32}}
collections:
  - {name: docs, embedder: sim-embed, dimensions: 64, sources: [{path: %s/public}]}
routes:
  - name: rag
    match: {model: sim-chat-rag}
    to: sim-chat
    chain: [{retrieval: {collection: docs, mode: vector}}]
  - name: default
`, t.TempDir(), docs))
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := chat(t, g.URL, "", "what does outlier ejection do", false)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if len(a.sources) > 0 {
			if !strings.HasPrefix(a.sources[0], "public/routing.md#") {
				t.Errorf("sources %v", a.sources)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the collection was not filled through the pool within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `switchyard_requests_total{route="default",model="sim-embed"`) && !strings.Contains(string(b), `model="sim-embed"`) {
		t.Errorf("no embeddings request through the gateway in /metrics")
	}
}

// TestReplicasOnPostgres: two gateways on one PostgreSQL share a
// collection with store: postgres; what one ingests the other searches
// within a second, and a removal reaches it too.
func TestReplicasOnPostgres(t *testing.T) {
	dsn := testsvc.Postgres(t)
	docs := writeDocs(t)
	cfg := func(sources string) string {
		return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
data_dir: %s
store: {postgres: {dsn: %q}}
backends: [{name: sim, kind: sim, sim: {model: sim-chat, profile: fast}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
collections: [{name: docs, store: postgres%s}]
routes:
  - {name: rag, match: {model: sim-chat-rag}, to: sim-chat, chain: [{retrieval: {collection: docs, mode: keyword}}]}
  - {name: default}
`, t.TempDir(), dsn, sources)
	}
	sources := fmt.Sprintf(", sources: [{path: %s/public}]", docs)
	a := gwtest.Start(t, cfg(sources))
	b := gwtest.Start(t, cfg(sources)) // the same config, as replicas have
	waitSource := func(g *gwtest.Gateway, q, prefix string, want bool) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			found := false
			for _, s := range chat(t, g.URL, "", q, false).sources {
				found = found || strings.HasPrefix(s, prefix)
			}
			if found == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q on the other replica: source %s present = %v after 1 s, want %v", q, prefix, found, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSource(b, "what does outlier ejection do", "public/routing.md#", true)

	// A new source file, the old one removed: replica a reloads, b learns
	// of it from PostgreSQL.
	if err := os.WriteFile(filepath.Join(docs, "public", "wombat.md"), []byte("# Wombats\n\nThe wombat cache warms every morning.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(docs, "public", "routing.md")); err != nil {
		t.Fatal(err)
	}
	if err := a.Srv.Reload(); err != nil {
		t.Fatal(err)
	}
	waitSource(b, "when does the wombat cache warm", "public/wombat.md#", true)
	waitSource(b, "what does outlier ejection do", "public/routing.md#", false)

	// A restarted replica loads the collection from PostgreSQL.
	b.Stop()
	c := gwtest.Start(t, cfg(""))
	waitSource(c, "when does the wombat cache warm", "public/wombat.md#", true)
}

// TestStageRewrite: with query: rewrite the stage asks a model for the
// query (through the gateway, skipping retrieval: a rewrite model routed
// back to the same stage does not loop), and searches the last user turn
// when that fails.
func TestStageRewrite(t *testing.T) {
	docs := writeDocs(t)
	base := ragConfig(docs, t.TempDir())
	for name, model := range map[string]string{"same route": "sim-chat-rag", "missing model": "no-such-model"} {
		cfg := strings.Replace(base, "mode: keyword, min_score: 0.1", "mode: keyword, min_score: 0.1, query: rewrite, rewrite_model: "+model, 1)
		g := gwtest.Start(t, cfg)
		a := chat(t, g.URL, testKeys["globex"], "what does outlier ejection do", false)
		if a.status != 200 {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
		resp, err := http.Get(g.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		failed := strings.Contains(string(m), `switchyard_retrieval_rewrite_failures_total{route="rag",collection="docs"} 1`)
		if want := model == "no-such-model"; failed != want {
			t.Errorf("%s: rewrite failure counted = %v, want %v", name, failed, want)
		}
		if model == "no-such-model" && (len(a.sources) == 0 || !strings.HasPrefix(a.sources[0], "public/routing.md#")) {
			t.Errorf("%s: after a failed rewrite the last user turn is searched: sources %v", name, a.sources)
		}
		g.Stop()
	}
}
