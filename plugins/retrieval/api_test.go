package retrieval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/internal/retrieve"
)

func multipartBody(t testing.TB, parts [][3]string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p[1] != "" {
			fw, _ := w.CreateFormFile(p[0], p[1])
			fw.Write([]byte(p[2]))
		} else {
			w.WriteField(p[0], p[2])
		}
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func TestParseUpload(t *testing.T) {
	status := func(err error) int {
		var e *apiError
		if errors.As(err, &e) {
			return e.Status
		}
		return 0
	}
	f := func(parts [][3]string, wantStatus int, wantParam string) {
		t.Helper()
		ct, body := multipartBody(t, parts)
		u, err := parseUpload(ct, body, 10)
		if wantStatus == 0 {
			if err != nil {
				t.Fatalf("%v: %v", parts, err)
			}
			if u.filename == "" || u.purpose == "" {
				t.Fatalf("%v: %+v", parts, u)
			}
			return
		}
		var e *apiError
		if status(err) != wantStatus || !errors.As(err, &e) || e.Param != wantParam {
			t.Fatalf("%v: %v (status %d), want %d with param %q", parts, err, status(err), wantStatus, wantParam)
		}
	}
	f([][3]string{{"purpose", "", "assistants"}, {"file", "a.md", "hello"}}, 0, "")
	f([][3]string{{"file", "a.md", ""}, {"purpose", "", "user_data"}}, 0, "") // an empty file is a file
	f([][3]string{{"file", "a.md", "0123456789x"}, {"purpose", "", "assistants"}}, 413, "file")
	f([][3]string{{"file", "a.md", "x"}}, 400, "purpose")
	f([][3]string{{"purpose", "", "assistants"}}, 400, "file")
	f([][3]string{{"file", "", "x"}, {"purpose", "", "assistants"}}, 400, "file") // a field, not a file
	f([][3]string{{"file", "a", "x"}, {"file", "b", "y"}, {"purpose", "", "assistants"}}, 400, "file")
	f([][3]string{{"file", "a", "x"}, {"purpose", "", "a"}, {"purpose", "", "b"}}, 400, "purpose")
	f([][3]string{{"file", "a", "x"}, {"purpose", "", "a"}, {"other", "", "b"}}, 400, "other")
	f([][3]string{{"file", "a", "x"}, {"purpose", "", "a"}, {"expires_after[anchor]", "", "created_at"}}, 400, "expires_after")
	if _, err := parseUpload("application/json", []byte("{}"), 10); status(err) != 400 {
		t.Fatalf("json: %v", err)
	}
	if _, err := parseUpload("multipart/form-data; boundary=x", []byte("--x\r\nbroken"), 10); status(err) != 400 {
		t.Fatalf("broken: %v", err)
	}
	// The file name is its base name.
	ct, body := multipartBody(t, [][3]string{{"file", "../../etc/passwd", "x"}, {"purpose", "", "assistants"}})
	if u, err := parseUpload(ct, body, 10); err != nil || u.filename != "passwd" {
		t.Fatalf("%+v %v", u, err)
	}
}

func FuzzParseUpload(f *testing.F) {
	ct, body := multipartBody(f, [][3]string{{"purpose", "", "assistants"}, {"file", "a.md", "hello"}})
	f.Add(ct, body)
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--x--\r\n"))
	f.Add("text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		u, err := parseUpload(ct, body, 64)
		if err != nil {
			var e *apiError
			if !errors.As(err, &e) || e.Status < 400 || e.Message == "" {
				t.Fatalf("not an API error: %v", err)
			}
			return
		}
		if len(u.content) > 64 || u.filename == "" || strings.ContainsAny(u.filename, "/\x00") {
			t.Fatalf("accepted %+v", u)
		}
	})
}

func TestParseAttributes(t *testing.T) {
	f := func(raw string, want map[string]any, wantParam string) {
		t.Helper()
		got, err := parseAttributes(json.RawMessage(raw), "attributes")
		if wantParam != "" {
			var e *apiError
			if !errors.As(err, &e) || e.Param != wantParam || e.Status != 400 {
				t.Fatalf("%s: %v, want a 400 on %s", raw, err, wantParam)
			}
			return
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %v %v, want %v", raw, got, err, want)
		}
	}
	f(`null`, nil, "")
	f(``, nil, "")
	f(`{"a":"x","n":2,"b":true}`, map[string]any{"a": "x", "b": true, "n": 2.0}, "")
	f(`{"a":[1]}`, nil, "attributes.a")
	f(`{"a":null}`, nil, "attributes.a")
	f(`{"a":{"b":1}}`, nil, "attributes.a")
	f(`[1]`, nil, "attributes")
	f(`"x"`, nil, "attributes")
	f(`{"a":"`+strings.Repeat("é", 512)+`"}`, map[string]any{"a": strings.Repeat("é", 512)}, "") // characters, not bytes
	f(`{"a":"`+strings.Repeat("x", 513)+`"}`, nil, "attributes.a")
	f(`{"`+strings.Repeat("k", 65)+`":1}`, nil, "attributes")
	f(`{"":1}`, nil, "attributes")
	many := map[string]int{}
	for i := range 17 {
		many[fmt.Sprint(i)] = i
	}
	b, _ := json.Marshal(many)
	f(string(b), nil, "attributes")
}

func TestACLOf(t *testing.T) {
	acme := &gateway.Principal{KeyID: "k1", Tenant: "acme"}
	solo := &gateway.Principal{KeyID: "solo"}
	f := func(p *gateway.Principal, attrs map[string]any, want retrieve.ACL, wantMeta int, wantStatus int) {
		t.Helper()
		acl, meta, err := aclOf(attrs, p, "attributes")
		if wantStatus != 0 {
			var e *apiError
			if !errors.As(err, &e) || e.Status != wantStatus {
				t.Fatalf("%v %v: %v, want %d", p, attrs, err, wantStatus)
			}
			return
		}
		if err != nil || fmt.Sprint(acl) != fmt.Sprint(want) || len(meta) != wantMeta {
			t.Fatalf("%v %v: %+v %v %v, want %+v", p, attrs, acl, meta, err, want)
		}
	}
	f(nil, nil, retrieve.ACL{}, 0, 0)
	f(nil, map[string]any{"acl_tenants": "x"}, retrieve.ACL{Tenants: []string{"x"}}, 0, 0)
	f(acme, nil, retrieve.ACL{Tenants: []string{"acme"}}, 0, 0)
	f(acme, map[string]any{"acl_tenants": "acme", "acl_groups": "hr, eng,hr", "team": "x"}, retrieve.ACL{Tenants: []string{"acme"}, Groups: []string{"hr", "eng"}}, 1, 0)
	f(acme, map[string]any{"acl_keys": "k2"}, retrieve.ACL{Tenants: []string{"acme"}, Keys: []string{"k2"}}, 0, 0)
	f(acme, map[string]any{"acl_tenants": "globex"}, retrieve.ACL{}, 0, 403)
	f(acme, map[string]any{"acl_tenants": "acme,globex"}, retrieve.ACL{}, 0, 403)
	f(acme, map[string]any{"acl_groups": 3.0}, retrieve.ACL{}, 0, 400)
	f(solo, nil, retrieve.ACL{Keys: []string{"solo"}}, 0, 0)
	f(solo, map[string]any{"acl_keys": "solo", "acl_groups": "g"}, retrieve.ACL{Groups: []string{"g"}, Keys: []string{"solo"}}, 0, 0)
	f(solo, map[string]any{"acl_keys": "solo,other"}, retrieve.ACL{}, 0, 403)
	f(solo, map[string]any{"acl_keys": ""}, retrieve.ACL{}, 0, 403)
	f(solo, map[string]any{"acl_tenants": "acme"}, retrieve.ACL{}, 0, 403)
}

// FuzzACLOf: whatever the attributes, an accepted ACL never admits anyone
// outside the caller's scope.
func FuzzACLOf(f *testing.F) {
	f.Add(`{"acl_tenants":"acme","acl_groups":"hr","x":1}`, "k1", "acme", "hr", "k2", "globex", "hr")
	f.Add(`{"acl_keys":"solo"}`, "solo", "", "", "other", "", "")
	f.Fuzz(func(t *testing.T, raw, key, tenant, group, okey, otenant, ogroup string) {
		attrs, err := parseAttributes(json.RawMessage(raw), "attributes")
		if err != nil {
			return
		}
		if key == "" {
			key = "k"
		}
		p := &gateway.Principal{KeyID: key, Tenant: tenant}
		acl, _, err := aclOf(attrs, p, "attributes")
		if err != nil {
			return
		}
		if okey == key {
			return // key ids are unique: the same key is the same caller
		}
		other := retrieve.Principal{KeyID: okey, Tenant: otenant, Groups: []string{ogroup}}
		outside := otenant != tenant || (tenant == "" && okey != key)
		if outside && acl.Allows(other) {
			t.Fatalf("caller %+v set %+v, which admits %+v outside its scope", p, acl, other)
		}
	})
}

func TestParseMetadata(t *testing.T) {
	if m, err := parseMetadata(json.RawMessage(`{"a":"b"}`)); err != nil || m["a"] != "b" {
		t.Fatal(m, err)
	}
	for _, bad := range []string{`{"a":1}`, `[]`, `{"a":"` + strings.Repeat("x", 513) + `"}`} {
		if _, err := parseMetadata(json.RawMessage(bad)); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}

func TestCheckChunking(t *testing.T) {
	c := &Coll{Name: "kb"}
	c.Spec.Chunking.MaxTokens, c.Spec.Chunking.OverlapTokens = 256, 32
	for raw, ok := range map[string]bool{
		``: true, `null`: true, `{"type":"auto"}`: true,
		`{"type":"static","static":{"max_chunk_size_tokens":256,"chunk_overlap_tokens":32}}`:  true,
		`{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":400}}`: false,
		`{"type":"static","static":{"max_chunk_size_tokens":50,"chunk_overlap_tokens":0}}`:    false,
		`{"type":"static"}`: false, `{"type":"other"}`: false, `{"type":"auto","x":1}`: false,
	} {
		if err := checkChunking(json.RawMessage(raw), c, "chunking_strategy"); (err == nil) != ok {
			t.Errorf("%s: %v", raw, err)
		}
	}
	if got := chunkingOf(c); got.Type != "static" || got.Static.MaxChunkSizeTokens != 256 {
		t.Errorf("%+v", got)
	}
	c.Spec.Chunking.MaxTokens = 64
	if got := chunkingOf(c); got.Type != "other" {
		t.Errorf("%+v", got)
	}
}

func TestIDs(t *testing.T) {
	a, b := newID(fileIDPrefix), newID(fileIDPrefix)
	if a >= b || !strings.HasPrefix(a, "file-") {
		t.Fatalf("%s %s: not increasing", a, b)
	}
	if _, ok := idTime(a); !ok {
		t.Fatalf("idTime(%s)", a)
	}
	for _, bad := range []string{"file-", "file-xyz", "vs_" + strings.Repeat("z", 26), "docs", "file-" + strings.Repeat("0", 27)} {
		if _, ok := idTime(bad); ok {
			t.Errorf("idTime(%q) accepted", bad)
		}
	}
	for _, k := range []string{"vs_1/file-2", ".", "..", "a%b", "é/x", "file-0123"} {
		if got, ok := unescapeKey(escapeKey(k)); !ok || got != k || strings.ContainsAny(escapeKey(k), "/") || escapeKey(k)[0] == '.' {
			t.Errorf("escapeKey(%q) = %q, back %q %v", k, escapeKey(k), got, ok)
		}
	}
}

type item struct {
	created int64
	id      string
}

func itemKey(i item) listKey { return listKey{i.created, i.id} }

func args(q string) *fasthttp.Args {
	var a fasthttp.Args
	a.Parse(q)
	return &a
}

func TestPaginate(t *testing.T) {
	items := []item{{1, "a"}, {2, "b"}, {2, "c"}, {3, "d"}, {5, "e"}}
	f := func(q string, want string, wantMore bool) {
		t.Helper()
		p, err := parseList(args(q), 20, 100, true, false)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		page, more, err := paginate(items, itemKey, p)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var ids []string
		for _, it := range page {
			ids = append(ids, it.id)
		}
		if strings.Join(ids, "") != want || more != wantMore {
			t.Fatalf("%s: %v more=%v, want %s more=%v", q, ids, more, want, wantMore)
		}
	}
	f("", "edcba", false)
	f("order=asc", "abcde", false)
	f("order=asc&limit=2", "ab", true)
	f("order=asc&limit=2&after=b", "cd", true)
	f("order=asc&limit=2&after=d", "e", false)
	f("limit=2&after=d", "cb", true)
	f("order=asc&limit=2&before=e", "cd", true)
	f("order=asc&before=b", "a", false)
	f("order=asc&after=a&before=e", "bcd", false)
	f("order=asc&after=e", "", false)
	// A deleted object of ours places by the time in its id.
	mk := func(created int64) string { return fmt.Sprintf("file-%014x%012x", created*1e6, 0) }
	items = []item{{1, mk(1)}, {3, mk(3)}, {5, mk(5)}}
	p, _ := parseList(args("order=asc&after="+mk(2)), 20, 100, true, false)
	if page, _, err := paginate(items, itemKey, p); err != nil || len(page) != 2 || page[0].id != mk(3) {
		t.Fatalf("deleted cursor: %v %v", page, err)
	}
	p, _ = parseList(args("after=unknown"), 20, 100, true, false)
	if _, _, err := paginate(items, itemKey, p); err == nil {
		t.Fatal("unknown cursor accepted")
	}
	for _, bad := range []string{"limit=0", "limit=101", "limit=x", "order=sideways"} {
		if _, err := parseList(args(bad), 20, 100, true, false); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := parseList(args("filter=done"), 20, 100, true, true); err == nil {
		t.Error("bad filter accepted")
	}
}

// FuzzPaginate: any query gives a page that is a run of the sorted list,
// in order, of at most limit items, or a 400.
func FuzzPaginate(f *testing.F) {
	f.Add("order=asc&limit=2&after=b", uint8(5))
	f.Add("before=c&after=a", uint8(3))
	f.Add("after="+newID(fileIDPrefix), uint8(4))
	f.Fuzz(func(t *testing.T, q string, n uint8) {
		var items []item
		for i := range int(n % 20) {
			items = append(items, item{int64(i / 3), string(rune('a' + i))})
		}
		p, err := parseList(args(q), 20, 100, true, true)
		if err != nil {
			var e *apiError
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("%v", err)
			}
			return
		}
		page, _, err := paginate(items, itemKey, p)
		if err != nil {
			return
		}
		if len(page) > p.limit {
			t.Fatalf("%d items, limit %d", len(page), p.limit)
		}
		for i := 1; i < len(page); i++ {
			c := itemKey(page[i-1]).compare(itemKey(page[i]))
			if (p.desc && c <= 0) || (!p.desc && c >= 0) {
				t.Fatalf("out of order: %v", page)
			}
		}
		for _, it := range page {
			if !slices.Contains(items, it) || it.id == p.after || it.id == p.before {
				t.Fatalf("%v: %v is not an item or is a cursor", q, it)
			}
		}
	})
}

func TestCleanErr(t *testing.T) {
	err := fmt.Errorf("retrieve: document %q: %w", "file-x", fmt.Errorf("retrieve: jsonl line 2: missing \"text\""))
	if got := cleanErr(err); got != `jsonl line 2: missing "text"` {
		t.Fatalf("%q", got)
	}
}
