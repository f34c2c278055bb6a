package retrieval_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"switchyard/internal/gwtest"
	"switchyard/internal/testsvc"
)

// TestAPIRestart: files, run-time vector stores, their documents, their
// failed attachments and batches survive a restart on the same data_dir.
func TestAPIRestart(t *testing.T) {
	data := t.TempDir()
	cfg := apiConfig(t, data, false, "")
	k := apiKeys["acme-eng"]
	g := gwtest.Start(t, cfg)
	f := upload(t, g.URL, k, "otters.md", "# Otters\n\nSea otters hold hands while they sleep.\n")
	bad := upload(t, g.URL, k, "empty.txt", "")
	var vs struct {
		ID string `json:"id"`
	}
	do(t, "POST", g.URL+"/v1/vector_stores", k, map[string]any{"name": "animals", "file_ids": []string{f}, "metadata": map[string]string{"a": "b"}}).decode(t, &vs)
	if _, r := attachFile(t, g.URL, k, vs.ID, bad, nil); r.status != 200 {
		t.Fatal(string(r.body))
	}
	if vf, r := attachFile(t, g.URL, k, "docs", f, map[string]any{"kind": "zoo"}); vf.Status != "completed" {
		t.Fatal(string(r.body))
	}
	var batch struct {
		ID string `json:"id"`
	}
	do(t, "POST", g.URL+"/v1/vector_stores/"+vs.ID+"/file_batches", k, map[string]any{"file_ids": []string{f}}).decode(t, &batch)
	before := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID, k, nil).body
	g.Stop()

	g = gwtest.Start(t, cfg)
	if r := do(t, "GET", g.URL+"/v1/files/"+f+"/content", k, nil); r.status != 200 || !strings.Contains(string(r.body), "hold hands") {
		t.Fatalf("file content after restart: %d %s", r.status, r.body)
	}
	if got := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID, k, nil).body; string(got) != string(before) {
		t.Fatalf("vector store after restart:\n%s\nbefore:\n%s", got, before)
	}
	for _, store := range []string{vs.ID, "docs"} {
		if ids := searchIDs(t, g.URL, k, store, map[string]any{"query": "sea otters sleep"}); len(ids) == 0 || ids[0] != f {
			t.Fatalf("%s: search after restart: %v", store, ids)
		}
	}
	if ids := listIDs(t, g.URL+"/v1/vector_stores/"+vs.ID+"/files?filter=failed", k); !slices.Equal(ids, []string{bad}) {
		t.Fatalf("failed attachments after restart: %v", ids)
	}
	if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID+"/file_batches/"+batch.ID, k, nil); r.status != 200 {
		t.Fatalf("batch after restart: %d %s", r.status, r.body)
	}
	// Deleting the vector store removes its directory.
	if r := do(t, "DELETE", g.URL+"/v1/vector_stores/"+vs.ID, k, nil); r.status != 200 {
		t.Fatal(string(r.body))
	}
	if _, err := os.Stat(data + "/collections/" + vs.ID); !os.IsNotExist(err) {
		t.Fatalf("the vector store's directory is still there: %v", err)
	}
	g.Stop()
	g = gwtest.Start(t, cfg)
	if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID, k, nil); r.status != 404 {
		t.Fatalf("deleted vector store after restart: %d", r.status)
	}
}

// TestAPIReindex: after a change of a collection's chunking (a reload),
// POST /admin/vector_stores/{id}/reindex chunks the API's files anew.
func TestAPIReindex(t *testing.T) {
	data := t.TempDir()
	cfg := apiConfig(t, data, true, "")
	g := gwtest.Start(t, cfg)
	long := strings.Repeat("The capybara is the largest living rodent and it swims well. ", 60)
	f := upload(t, g.URL, "", "capybara.txt", long)
	if vf, r := attachFile(t, g.URL, "", "docs", f, map[string]any{"kind": "rodent"}); vf.Status != "completed" {
		t.Fatal(string(r.body))
	}
	longest := func() int {
		r := do(t, "POST", g.URL+"/v1/vector_stores/docs/search", "", map[string]any{"query": "capybara rodent", "max_num_results": 50})
		var pg struct {
			Data []struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"data"`
		}
		r.decode(t, &pg)
		n := 0
		for _, d := range pg.Data {
			n = max(n, len(d.Content[0].Text))
		}
		return n
	}
	if n := longest(); n <= 64*4 {
		t.Fatalf("chunks of %d bytes before the change", n)
	}
	changed := strings.Replace(cfg, "  - name: docs\n", "  - name: docs\n    chunking: {max_tokens: 64, overlap_tokens: 8}\n", 1)
	if err := os.WriteFile(g.Path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "POST", g.Admin+"/admin/reload", "", nil); r.status != 200 {
		t.Fatalf("reload: %d %s", r.status, r.body)
	}
	r := do(t, "POST", g.Admin+"/admin/vector_stores/docs/reindex", "", nil)
	var ans struct {
		Files, Completed, Failed int
	}
	r.decode(t, &ans)
	if r.status != 200 || ans.Files != 1 || ans.Completed != 1 || ans.Failed != 0 {
		t.Fatalf("reindex: %d %s", r.status, r.body)
	}
	if n := longest(); n > 64*4 {
		t.Fatalf("chunks of %d bytes after reindexing", n)
	}
	var vf vsFile
	do(t, "GET", g.URL+"/v1/vector_stores/docs/files/"+f, "", nil).decode(t, &vf)
	if vf.Attributes["kind"] != "rodent" {
		t.Fatalf("attributes after reindexing: %+v", vf)
	}
	if r := do(t, "POST", g.Admin+"/admin/vector_stores/nope/reindex", "", nil); r.status != 404 {
		t.Fatalf("unknown vector store: %d", r.status)
	}
	if r := do(t, "GET", g.Admin+"/admin/vector_stores/docs/reindex", "", nil); r.status != 405 {
		t.Fatalf("GET reindex: %d", r.status)
	}
}

// TestAPIPostgres: with store.postgres.dsn the files and the records live
// in PostgreSQL, and run-time vector stores are collections there: a
// restart on an empty data_dir still has them all.
func TestAPIPostgres(t *testing.T) {
	dsn := testsvc.Postgres(t)
	extra := "store: {postgres: {dsn: \"" + dsn + "\"}}"
	k := apiKeys["globex"]
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, extra))
	f := upload(t, g.URL, k, "pg.md", "# Elephants\n\nElephants remember water holes.\n")
	if vf, r := attachFile(t, g.URL, k, "docs", f, nil); vf.Status != "completed" {
		t.Fatal(string(r.body))
	}
	var vs struct {
		ID string `json:"id"`
	}
	do(t, "POST", g.URL+"/v1/vector_stores", k, map[string]any{"name": "pg", "file_ids": []string{f}}).decode(t, &vs)
	g.Stop()
	g = gwtest.Start(t, apiConfig(t, t.TempDir(), false, extra))
	if ids := searchIDs(t, g.URL, k, vs.ID, map[string]any{"query": "elephants remember"}); !slices.Equal(ids, []string{f}) {
		t.Fatalf("run-time vector store in PostgreSQL after restart: %v", ids)
	}
	if r := do(t, "DELETE", g.URL+"/v1/vector_stores/"+vs.ID, k, nil); r.status != 200 {
		t.Fatal(string(r.body))
	}
	if r := do(t, "GET", g.URL+"/v1/files/"+f+"/content", k, nil); r.status != 200 || !strings.Contains(string(r.body), "water holes") {
		t.Fatalf("content from PostgreSQL: %d %s", r.status, r.body)
	}
	if ids := listIDs(t, g.URL+"/v1/files", k); !slices.Equal(ids, []string{f}) {
		t.Fatalf("files from PostgreSQL: %v", ids)
	}
	if ids := listIDs(t, g.URL+"/v1/files", apiKeys["acme-hr"]); len(ids) != 0 {
		t.Fatalf("acme lists globex's files: %v", ids)
	}
	if r := do(t, "DELETE", g.URL+"/v1/files/"+f, k, nil); r.status != 200 {
		t.Fatal(string(r.body))
	}
	if r := do(t, "GET", g.URL+"/v1/files/"+f, k, nil); r.status != 404 {
		t.Fatalf("deleted file: %d", r.status)
	}
}
