package retrieval_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"switchyard/internal/gwtest"
)

// TestAPIBadInput: every bad request gets a clear OpenAI-style error with
// the right status and param, and a failed attachment leaves nothing
// searchable.
func TestAPIBadInput(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	k := apiKeys["acme-hr"]
	good := upload(t, g.URL, k, "good.md", "# Good\n\nThe narwhal handbook.\n")

	cases := []struct {
		name   string
		resp   func() apiResp
		status int
		param  string // "" for null
		msg    string // a part of the message
	}{
		{"bad purpose", func() apiResp {
			return uploadRaw(t, g.URL, k, "a.txt", []byte("x"), map[string]string{"purpose": "fine-tune"})
		}, 400, "purpose", "assistants or user_data"},
		{"no purpose", func() apiResp { return uploadRaw(t, g.URL, k, "a.txt", []byte("x"), nil) }, 400, "purpose", "Missing required parameter"},
		{"no file", func() apiResp { return uploadRaw(t, g.URL, k, "", nil, map[string]string{"purpose": "assistants"}) }, 400, "file", "Missing required parameter"},
		{"unknown field", func() apiResp {
			return uploadRaw(t, g.URL, k, "a.txt", []byte("x"), map[string]string{"purpose": "assistants", "colour": "red"})
		}, 400, "colour", "Unrecognized"},
		{"not multipart", func() apiResp { return do(t, "POST", g.URL+"/v1/files", k, `{"purpose":"assistants"}`) }, 400, "", "multipart/form-data"},
		{"bad multipart", func() apiResp {
			req, _ := http.NewRequest("POST", g.URL+"/v1/files", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nno end"))
			req.Header.Set("content-type", "multipart/form-data; boundary=b")
			return send(t, req, k)
		}, 400, "", "malformed"}, // fasthttp parses multipart bodies before the handler
		{"unknown file", func() apiResp { return do(t, "GET", g.URL+"/v1/files/file-nope", k, nil) }, 404, "file_id", "No such File object: file-nope"},
		{"unknown file content", func() apiResp { return do(t, "GET", g.URL+"/v1/files/file-nope/content", k, nil) }, 404, "file_id", "No such File object"},
		{"unknown vector store", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores/vs_nope", k, nil) }, 404, "vector_store_id", "No such vector store: vs_nope"},
		{"unknown vector store file", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores/docs/files/file-nope", k, nil) }, 404, "file_id", "No such vector store file"},
		{"unknown batch", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores/docs/file_batches/vsfb_nope", k, nil) }, 404, "batch_id", "No such vector store file batch"},
		{"attach an unknown file", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": "file-nope"})
		}, 404, "file_id", "No such File object"},
		{"attach without file_id", func() apiResp { return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, `{}`) }, 400, "file_id", "Missing"},
		{"unknown argument", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": good, "colour": 1})
		}, 400, "colour", "Unrecognized request argument"},
		{"not JSON", func() apiResp { return do(t, "POST", g.URL+"/v1/vector_stores", k, `{"name":`) }, 400, "", "not valid JSON"},
		{"too many attributes", func() apiResp {
			attrs := map[string]any{}
			for i := range 17 {
				attrs[string(rune('a'+i))] = "x"
			}
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": good, "attributes": attrs})
		}, 400, "attributes", "at most 16"},
		{"long attribute", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": good, "attributes": map[string]any{"k": strings.Repeat("x", 513)}})
		}, 400, "attributes.k", "512"},
		{"attribute of an object", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": good, "attributes": map[string]any{"k": map[string]any{}}})
		}, 400, "attributes.k", "strings, numbers or booleans"},
		{"static chunking unlike the collection's", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/files", k, map[string]any{"file_id": good,
				"chunking_strategy": map[string]any{"type": "static", "static": map[string]any{"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}})
		}, 400, "chunking_strategy", "max_chunk_size_tokens 256"},
		{"malformed filter", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/search", k, `{"query":"x","filters":{"type":"and","filters":[{"type":"eq","key":"a","value":1},{"type":"zz","key":"b","value":2}]}}`)
		}, 400, "filters.filters[1].type", "zz"},
		{"filter value of the wrong kind", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/search", k, `{"query":"x","filters":{"type":"eq","key":"a","value":{"x":1}}}`)
		}, 400, "filters.value", ""},
		{"no query", func() apiResp { return do(t, "POST", g.URL+"/v1/vector_stores/docs/search", k, `{}`) }, 400, "query", "Missing"},
		{"too many results", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/search", k, `{"query":"x","max_num_results":51}`)
		}, 400, "max_num_results", "1 to 50"},
		{"bad ranker", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores/docs/search", k, `{"query":"x","ranking_options":{"ranker":"magic"}}`)
		}, 400, "ranking_options.ranker", "magic"},
		{"rename a config vector store", func() apiResp { return do(t, "POST", g.URL+"/v1/vector_stores/docs", k, `{"name":"other"}`) }, 400, "name", "cannot be changed"},
		{"delete a config vector store", func() apiResp { return do(t, "DELETE", g.URL+"/v1/vector_stores/docs", k, nil) }, 400, "vector_store_id", "cannot be deleted"},
		{"expiry", func() apiResp {
			return do(t, "POST", g.URL+"/v1/vector_stores", k, `{"expires_after":{"anchor":"last_active_at","days":1}}`)
		}, 400, "expires_after", "do not expire"},
		{"bad limit", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores?limit=0", k, nil) }, 400, "limit", "1 to 100"},
		{"bad order", func() apiResp { return do(t, "GET", g.URL+"/v1/files?order=up", k, nil) }, 400, "order", "asc or desc"},
		{"unknown cursor", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores?after=nope", k, nil) }, 400, "after", "nope"},
		{"bad status filter", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores/docs/files?filter=done", k, nil) }, 400, "filter", "done"},
		{"wrong method", func() apiResp { return do(t, "PUT", g.URL+"/v1/files", k, nil) }, 405, "", ""},
		{"wrong method on a sub-path", func() apiResp { return do(t, "DELETE", g.URL+"/v1/vector_stores/docs/search", k, nil) }, 405, "", "use POST"},
		{"unknown sub-path", func() apiResp { return do(t, "GET", g.URL+"/v1/vector_stores/docs/nothing", k, nil) }, 404, "", "unknown path"},
		{"no key", func() apiResp { return do(t, "GET", g.URL+"/v1/files", "", nil) }, 401, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.resp()
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			e := r.err(t)
			if e.Error.Type == "" || e.Error.Message == "" {
				t.Fatalf("not an OpenAI error: %s", r.body)
			}
			got := ""
			if e.Error.Param != nil {
				got = *e.Error.Param
			}
			if c.param != "" && got != c.param {
				t.Errorf("param %q, want %q: %s", got, c.param, r.body)
			}
			if !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("message %q, want it to say %q", e.Error.Message, c.msg)
			}
			if c.status == 405 && r.header.Get("allow") == "" {
				t.Errorf("405 without an allow header")
			}
		})
	}
}

// TestAPIUploadLimit: a file over the largest max_file_size is a 413
// (a body over server.max_body_size is the server's 413, before any
// handler).
func TestAPIUploadLimit(t *testing.T) {
	cfg := apiConfig(t, t.TempDir(), true, "")
	cfg = strings.Replace(cfg, "server: {watch_interval: 0s}", "server: {watch_interval: 0s, max_body_size: 64KiB}", 1)
	cfg = strings.Replace(cfg, "  - name: docs\n", "  - name: docs\n    max_file_size: 2KiB\n", 1)
	g := gwtest.Start(t, cfg)
	r := uploadRaw(t, g.URL, "", "big.txt", bytes.Repeat([]byte("a"), 2<<10+1), map[string]string{"purpose": "assistants"})
	if e := r.err(t); r.status != 413 || e.Error.Param == nil || *e.Error.Param != "file" || !strings.Contains(e.Error.Message, "2048 bytes") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := uploadRaw(t, g.URL, "", "ok.txt", bytes.Repeat([]byte("a"), 2<<10), map[string]string{"purpose": "assistants"}); r.status != 200 {
		t.Fatalf("at the limit: %d %s", r.status, r.body)
	}
}

// TestAPIFailedAttach: an empty, binary, too large or unsupported file
// fails with last_error, is listed as failed, and is never found.
func TestAPIFailedAttach(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	k := apiKeys["acme-hr"]
	cases := []struct {
		name, filename, content, vs, code string
	}{
		{"empty", "empty.txt", "", "docs", "invalid_file"},
		{"blank", "blank.md", "\n\n  \n", "docs", "invalid_file"},
		{"binary", "blob.txt", "abc\x00\x01\x02 zebra", "docs", "unsupported_file"},
		{"invalid UTF-8", "latin1.txt", "caf\xe9 zebra", "docs", "unsupported_file"},
		{"unsupported type", "report.pdf", "%PDF-1.4 zebra", "docs", "unsupported_file"},
		{"too large for the store", "big.txt", strings.Repeat("zebra ", 400), "small", "invalid_file"},
		{"malformed JSON Lines", "bad.jsonl", "{\"text\": \"zebra\"}\nnot json\n", "docs", "invalid_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := upload(t, g.URL, k, c.filename, c.content)
			f, r := attachFile(t, g.URL, k, c.vs, id, nil)
			if r.status != 200 || f.Status != "failed" || f.LastError == nil || f.LastError.Code != c.code || f.LastError.Message == "" {
				t.Fatalf("attach: %d %s", r.status, r.body)
			}
			files := listIDs(t, g.URL+"/v1/vector_stores/"+c.vs+"/files?filter=failed", k)
			if !slices.Contains(files, id) {
				t.Errorf("failed file not listed as failed: %v", files)
			}
			if ids := listIDs(t, g.URL+"/v1/vector_stores/"+c.vs+"/files?filter=completed", k); slices.Contains(ids, id) {
				t.Errorf("failed file listed as completed")
			}
			if ids := searchIDs(t, g.URL, k, c.vs, map[string]any{"query": "zebra", "max_num_results": 50}); slices.Contains(ids, id) {
				t.Errorf("a failed file is found by search")
			}
			if r := do(t, "GET", g.URL+"/v1/vector_stores/"+c.vs+"/files/"+id+"/content", k, nil); r.status != 404 {
				t.Errorf("content of a failed file: %d %s", r.status, r.body)
			}
		})
	}
	// A file that attached before and fails now (a smaller store) leaves
	// nothing behind either; file_counts say it.
	id := upload(t, g.URL, k, "ok.txt", strings.Repeat("okapi ", 300))
	if f, r := attachFile(t, g.URL, k, "docs", id, nil); f.Status != "completed" {
		t.Fatalf("attach: %s", r.body)
	}
	if f, _ := attachFile(t, g.URL, k, "small", id, nil); f.Status != "failed" {
		t.Fatalf("small: %+v", f)
	}
	var vs struct {
		FileCounts struct{ Completed, Failed, Total int } `json:"file_counts"`
	}
	do(t, "GET", g.URL+"/v1/vector_stores/small", k, nil).decode(t, &vs)
	if vs.FileCounts.Failed != 2 || vs.FileCounts.Completed != 0 || vs.FileCounts.Total != 2 {
		t.Fatalf("small's file_counts %+v", vs.FileCounts)
	}
}

// TestAPIACL: the ACL rules of attributes, and what each caller sees.
func TestAPIACL(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	hr, eng, globex, solo := apiKeys["acme-hr"], apiKeys["acme-eng"], apiKeys["globex"], apiKeys["solo"]
	f := upload(t, g.URL, hr, "salaries.md", "# Salaries\n\nThe quokka bonus is paid in March.\n")
	// Only narrowing is allowed.
	for _, c := range []struct {
		key   string
		attrs map[string]any
		param string
	}{
		{hr, map[string]any{"acl_tenants": "globex"}, "attributes.acl_tenants"},
		{hr, map[string]any{"acl_tenants": "acme,globex"}, "attributes.acl_tenants"},
	} {
		_, r := attachFile(t, g.URL, c.key, "docs", f, c.attrs)
		if r.status != 403 || r.err(t).Error.Type != "permission_error" || *r.err(t).Error.Param != c.param {
			t.Fatalf("%v: %d %s", c.attrs, r.status, r.body)
		}
	}
	sf := upload(t, g.URL, solo, "solo.md", "# Solo\n\nThe wallaby secret.\n")
	for _, attrs := range []map[string]any{{"acl_tenants": "acme"}, {"acl_keys": "globex"}, {"acl_keys": "solo,globex"}} {
		if _, r := attachFile(t, g.URL, solo, "docs", sf, attrs); r.status != 403 {
			t.Fatalf("solo %v: %d %s", attrs, r.status, r.body)
		}
	}
	if vf, r := attachFile(t, g.URL, solo, "docs", sf, map[string]any{"acl_keys": "solo"}); vf.Status != "completed" {
		t.Fatalf("solo: %s", r.body)
	}
	// A file of acme for hr only.
	if vf, r := attachFile(t, g.URL, hr, "docs", f, map[string]any{"acl_groups": "hr", "kind": "pay"}); vf.Status != "completed" || vf.Attributes["acl_groups"] != "hr" {
		t.Fatalf("attach: %s", r.body)
	}
	ff := url.PathEscape(f)
	for _, c := range []struct {
		key            string
		search, listed bool
		content        int // of /v1/files/{id}/content
	}{
		{hr, true, true, 200},
		{eng, false, false, 403}, // sees the file (its tenant's) but not the document
		{globex, false, false, 404},
		{solo, false, false, 404},
	} {
		ids := searchIDs(t, g.URL, c.key, "docs", map[string]any{"query": "quokka bonus", "max_num_results": 50})
		if slices.Contains(ids, f) != c.search {
			t.Errorf("%s: search finds the file: %v, want %v", c.key, !c.search, c.search)
		}
		if slices.Contains(ids, sf) != (c.key == solo) {
			t.Errorf("%s: search and solo's file", c.key)
		}
		listed := slices.Contains(listIDs(t, g.URL+"/v1/vector_stores/docs/files?limit=100", c.key), f)
		if listed != c.listed {
			t.Errorf("%s: listed %v, want %v", c.key, listed, c.listed)
		}
		if r := do(t, "GET", g.URL+"/v1/files/"+ff+"/content", c.key, nil); r.status != c.content {
			t.Errorf("%s: file content %d, want %d: %s", c.key, r.status, c.content, r.body)
		}
		want := 404
		if c.listed {
			want = 200
		}
		if r := do(t, "GET", g.URL+"/v1/vector_stores/docs/files/"+ff+"/content", c.key, nil); r.status != want {
			t.Errorf("%s: vector store file content %d, want %d", c.key, r.status, want)
		}
		var vs struct {
			UsageBytes int64               `json:"usage_bytes"`
			FileCounts struct{ Total int } `json:"file_counts"`
		}
		do(t, "GET", g.URL+"/v1/vector_stores/docs", c.key, nil).decode(t, &vs)
		n := len(listIDs(t, g.URL+"/v1/vector_stores/docs/files?limit=100", c.key))
		if vs.FileCounts.Total != n {
			t.Errorf("%s: file_counts.total %d, but %d files listed", c.key, vs.FileCounts.Total, n)
		}
	}
	// Run-time vector stores are their creator's scope's.
	var vs struct {
		ID string `json:"id"`
	}
	do(t, "POST", g.URL+"/v1/vector_stores", eng, map[string]any{"name": "eng"}).decode(t, &vs)
	if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID, hr, nil); r.status != 200 {
		t.Errorf("same tenant: %d", r.status)
	}
	for _, k := range []string{globex, solo} {
		if r := do(t, "GET", g.URL+"/v1/vector_stores/"+vs.ID, k, nil); r.status != 404 {
			t.Errorf("another scope sees the vector store: %d", r.status)
		}
		if r := do(t, "POST", g.URL+"/v1/vector_stores/"+vs.ID+"/search", k, `{"query":"x"}`); r.status != 404 {
			t.Errorf("another scope searches the vector store: %d", r.status)
		}
	}
	// Only the file's scope detaches or deletes it.
	if r := do(t, "DELETE", g.URL+"/v1/files/"+ff, globex, nil); r.status != 404 {
		t.Errorf("globex deletes acme's file: %d", r.status)
	}
	if r := do(t, "DELETE", g.URL+"/v1/vector_stores/docs/files/"+url.PathEscape(sf), hr, nil); r.status != 404 {
		t.Errorf("hr detaches solo's file: %d", r.status)
	}
	// Deleting a file removes its documents everywhere.
	if _, r := attachFile(t, g.URL, eng, vs.ID, f, nil); r.status != 200 {
		t.Fatal(string(r.body))
	}
	if r := do(t, "DELETE", g.URL+"/v1/files/"+ff, eng, nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, store := range []string{"docs", vs.ID} {
		if ids := searchIDs(t, g.URL, hr, store, map[string]any{"query": "quokka bonus"}); slices.Contains(ids, f) {
			t.Errorf("%s: the deleted file is still found", store)
		}
		if ids := listIDs(t, g.URL+"/v1/vector_stores/"+store+"/files", hr); slices.Contains(ids, f) {
			t.Errorf("%s: the deleted file is still listed", store)
		}
	}
}

// TestAPISourceDocs: a config collection's source documents are vector
// store files too (listed, their content served at the link the stage's
// citations give), managed by the config.
func TestAPISourceDocs(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), true, ""))
	files := listIDs(t, g.URL+"/v1/vector_stores/docs/files", "")
	if len(files) != 1 || !strings.HasSuffix(files[0], "/routing.md") {
		t.Fatalf("files %v", files)
	}
	id := url.PathEscape(files[0])
	r := do(t, "GET", g.URL+"/v1/vector_stores/docs/files/"+id+"/content", "", nil)
	var pg struct {
		Data []struct{ Type, Text string } `json:"data"`
	}
	r.decode(t, &pg)
	if r.status != 200 || len(pg.Data) != 1 || !strings.Contains(pg.Data[0].Text, "Outlier ejection") {
		t.Fatalf("content: %d %s", r.status, r.body)
	}
	var vf vsFile
	do(t, "GET", g.URL+"/v1/vector_stores/docs/files/"+id, "", nil).decode(t, &vf)
	if vf.Status != "completed" || vf.UsageBytes == 0 || vf.Attributes["kind"] != "handbook" {
		t.Fatalf("file %+v", vf)
	}
	if r := do(t, "DELETE", g.URL+"/v1/vector_stores/docs/files/"+id, "", nil); r.status != 400 {
		t.Fatalf("deleting a source document: %d %s", r.status, r.body)
	}
	// The open gateway's files are public.
	fid := upload(t, g.URL, "", "open.md", "# Open\n\nThe dugong manual.\n")
	if vf, r := attachFile(t, g.URL, "", "docs", fid, nil); vf.Status != "completed" {
		t.Fatal(string(r.body))
	}
	if ids := searchIDs(t, g.URL, "", "docs", map[string]any{"query": "dugong"}); len(ids) == 0 || ids[0] != fid {
		t.Fatalf("search: %v", ids)
	}
}

// TestAPIPagination: lists walk forward with after and back with before,
// in both orders, and a cursor deleted between pages still places.
func TestAPIPagination(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), true, ""))
	var ids []string
	for i := range 5 {
		ids = append(ids, upload(t, g.URL, "", "f"+string(rune('a'+i))+".txt", "text "+string(rune('a'+i))))
	}
	walk := func(order string) []string {
		var got []string
		after := ""
		for range 10 {
			u := g.URL + "/v1/files?limit=2&order=" + order
			if after != "" {
				u += "&after=" + after
			}
			var pg struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
				HasMore bool   `json:"has_more"`
				LastID  string `json:"last_id"`
			}
			do(t, "GET", u, "", nil).decode(t, &pg)
			for _, d := range pg.Data {
				got = append(got, d.ID)
			}
			if !pg.HasMore {
				break
			}
			after = pg.LastID
		}
		return got
	}
	if got := walk("asc"); !slices.Equal(got, ids) {
		t.Fatalf("asc %v, want %v", got, ids)
	}
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if got := walk("desc"); !slices.Equal(got, rev) {
		t.Fatalf("desc %v, want %v", got, rev)
	}
	if got := listIDs(t, g.URL+"/v1/files?order=asc&limit=2&before="+ids[3], ""); !slices.Equal(got, ids[1:3]) {
		t.Fatalf("before: %v, want %v", got, ids[1:3])
	}
	do(t, "DELETE", g.URL+"/v1/files/"+ids[1], "", nil)
	if got := listIDs(t, g.URL+"/v1/files?order=asc&after="+ids[1], ""); !slices.Equal(got, ids[2:]) {
		t.Fatalf("after a deleted cursor: %v, want %v", got, ids[2:])
	}
	var vs struct {
		ID string `json:"id"`
	}
	for range 3 {
		do(t, "POST", g.URL+"/v1/vector_stores", "", `{}`).decode(t, &vs)
	}
	if got := listIDs(t, g.URL+"/v1/vector_stores?limit=1", ""); len(got) != 1 || got[0] != vs.ID {
		t.Fatalf("newest vector store first: %v, want %s", got, vs.ID)
	}

}

// TestAPIDeleteWhileAttaching: a file deleted while it is being attached
// leaves no document behind, whatever the interleaving.
func TestAPIDeleteWhileAttaching(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), true, ""))
	for round := range 5 {
		id := upload(t, g.URL, "", "race.md", "# Race\n\nThe pangolin rolls into a ball.\n")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 4 {
				// Errors are expected once the file is gone; only what is
				// left afterwards matters.
				body, _ := json.Marshal(map[string]any{"file_id": id})
				req, _ := http.NewRequest("POST", g.URL+"/v1/vector_stores/docs/files", bytes.NewReader(body))
				req.Header.Set("content-type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
		if r := do(t, "DELETE", g.URL+"/v1/files/"+id, "", nil); r.status != 200 {
			t.Fatalf("round %d: delete: %d %s", round, r.status, r.body)
		}
		<-done
		if ids := searchIDs(t, g.URL, "", "docs", map[string]any{"query": "pangolin ball"}); slices.Contains(ids, id) {
			t.Fatalf("round %d: the deleted file is found", round)
		}
		if ids := listIDs(t, g.URL+"/v1/vector_stores/docs/files?limit=100", ""); slices.Contains(ids, id) {
			t.Fatalf("round %d: the deleted file is listed", round)
		}
	}
}
