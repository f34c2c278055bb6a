package retrieval_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/internal/spectest"
)

// The keys of the API tests: two in tenant acme (groups hr and eng), one
// in globex, and solo, a key without a tenant.
var apiKeys = map[string]string{"acme-hr": "sk-api-acme-hr", "acme-eng": "sk-api-acme-eng", "globex": "sk-api-globex", "solo": "sk-api-solo",
	"acme-plain": "sk-api-acme-plain", "globex-hr": "sk-api-globex-hr", "solo2": "sk-api-solo2"}

// apiPrincipals describes the keys: tenant and groups.
var apiPrincipals = map[string]struct {
	tenant string
	groups []string
}{
	"acme-hr": {"acme", []string{"hr", "staff"}}, "acme-eng": {"acme", []string{"eng"}}, "acme-plain": {"acme", nil},
	"globex": {"globex", nil}, "globex-hr": {"globex", []string{"hr"}}, "solo": {"", nil}, "solo2": {"", []string{"hr"}},
}

// apiConfig is a gateway with keys (or none when open), the collection
// docs filled from sources, and small, whose files are at most 1 KiB.
func apiConfig(t *testing.T, dataDir string, open bool, extra string) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "routing.md"), []byte("# Routing\n\nA route sends requests to a model pool. Outlier ejection removes a failing backend.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := ""
	if !open {
		keys = fmt.Sprintf(`keys:
  - {id: acme-hr, sha256: %s, tenant: acme, metadata: {groups: "hr,staff"}}
  - {id: acme-eng, sha256: %s, tenant: acme, metadata: {groups: eng}}
  - {id: globex, sha256: %s, tenant: globex}
  - {id: solo, sha256: %s}
  - {id: acme-plain, sha256: %s, tenant: acme}
  - {id: globex-hr, sha256: %s, tenant: globex, metadata: {groups: hr}}
  - {id: solo2, sha256: %s, metadata: {groups: hr}}
`, keyHash(apiKeys["acme-hr"]), keyHash(apiKeys["acme-eng"]), keyHash(apiKeys["globex"]), keyHash(apiKeys["solo"]),
			keyHash(apiKeys["acme-plain"]), keyHash(apiKeys["globex-hr"]), keyHash(apiKeys["solo2"]))
	}
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
data_dir: %s
%s
backends: [{name: sim, kind: sim, sim: {model: sim-chat, embed-model: sim-embed, profile: fast, output-len: "30"}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
%s
collections:
  - name: docs
    sources: [{path: %s, metadata: {kind: handbook}}]
  - name: small
    max_file_size: 1KiB
routes:
  - name: default
`, dataDir, extra, keys, src)
}

// specOf names the spec schema of an answer of the APIs (status 200), ""
// for none (a file's bytes).
func specOf(method, path string, status int) string {
	if status >= 400 {
		return "ErrorResponse"
	}
	p := strings.TrimPrefix(path, "/v1/")
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case seg[0] == "files":
		switch {
		case len(seg) == 1 && method == "GET":
			return "ListFilesResponse"
		case len(seg) == 3:
			return ""
		case method == "DELETE":
			return "DeleteFileResponse"
		}
		return "OpenAIFile"
	case seg[0] != "vector_stores":
		return ""
	case len(seg) == 1:
		if method == "GET" {
			return "ListVectorStoresResponse"
		}
		return "VectorStoreObject"
	case len(seg) == 2:
		if method == "DELETE" {
			return "DeleteVectorStoreResponse"
		}
		return "VectorStoreObject"
	case seg[2] == "search":
		return "VectorStoreSearchResultsPage"
	case seg[2] == "files":
		switch {
		case len(seg) == 3 && method == "GET":
			return "ListVectorStoreFilesResponse"
		case len(seg) == 5:
			return "VectorStoreFileContentResponse"
		case method == "DELETE":
			return "DeleteVectorStoreFileResponse"
		}
		return "VectorStoreFileObject"
	case seg[2] == "file_batches":
		if len(seg) == 5 && seg[4] == "files" {
			return "ListVectorStoreFilesResponse"
		}
		return "VectorStoreFileBatchObject"
	}
	return ""
}

// specTransport checks every answer of the APIs against the spec.
type specTransport struct {
	t    testing.TB
	next http.RoundTripper
}

func (s specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if schema := specOf(req.Method, req.URL.EscapedPath(), resp.StatusCode); schema != "" {
		spectest.Check(s.t, schema, body)
	}
	return resp, nil
}

// specClient is an HTTP client whose answers are checked against the spec.
func specClient(t testing.TB) *http.Client {
	return &http.Client{Transport: specTransport{t: t, next: http.DefaultTransport}}
}

// apiResp is an answer of the APIs.
type apiResp struct {
	status int
	body   []byte
	header http.Header
}

func (r apiResp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// errBody is an OpenAI error answer.
type errBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func (r apiResp) err(t testing.TB) errBody {
	t.Helper()
	var e errBody
	r.decode(t, &e)
	return e
}

// do sends a request with key ("" for none) and a JSON body (nil for none);
// the answer is checked against the spec.
func do(t testing.TB, method, url, key string, body any) apiResp {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("content-type", ct)
	}
	return send(t, req, key)
}

func send(t testing.TB, req *http.Request, key string) apiResp {
	t.Helper()
	if key != "" {
		req.Header.Set("authorization", "Bearer "+key)
	}
	resp, err := specClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResp{status: resp.StatusCode, body: b, header: resp.Header}
}

// uploadRaw posts a multipart body of the given fields; a field named
// "file" is a file part named filename.
func uploadRaw(t testing.TB, base, key, filename string, content []byte, fields map[string]string) apiResp {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if content != nil {
		fw, err := w.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(content)
	}
	w.Close()
	req, _ := http.NewRequest("POST", base+"/v1/files", &buf)
	req.Header.Set("content-type", w.FormDataContentType())
	return send(t, req, key)
}

// upload uploads a file for assistants and returns its id.
func upload(t testing.TB, base, key, filename, content string) string {
	t.Helper()
	r := uploadRaw(t, base, key, filename, []byte(content), map[string]string{"purpose": "assistants"})
	if r.status != 200 {
		t.Fatalf("upload %s: %d %s", filename, r.status, r.body)
	}
	var f struct {
		ID string `json:"id"`
	}
	r.decode(t, &f)
	return f.ID
}

// vsFile is what the tests read of a vector store file.
type vsFile struct {
	ID         string         `json:"id"`
	Status     string         `json:"status"`
	UsageBytes int64          `json:"usage_bytes"`
	Attributes map[string]any `json:"attributes"`
	LastError  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"last_error"`
}

// attachFile attaches a file with attributes and returns the vector
// store file.
func attachFile(t testing.TB, base, key, vs, fileID string, attrs map[string]any) (vsFile, apiResp) {
	t.Helper()
	body := map[string]any{"file_id": fileID}
	if attrs != nil {
		body["attributes"] = attrs
	}
	r := do(t, "POST", base+"/v1/vector_stores/"+vs+"/files", key, body)
	var f vsFile
	if r.status == 200 {
		r.decode(t, &f)
	}
	return f, r
}

// searchIDs searches vs and returns the file ids of the results.
func searchIDs(t testing.TB, base, key, vs string, body any) []string {
	t.Helper()
	r := do(t, "POST", base+"/v1/vector_stores/"+vs+"/search", key, body)
	if r.status != 200 {
		t.Fatalf("search %s: %d %s", vs, r.status, r.body)
	}
	var pg struct {
		Data []struct {
			FileID string `json:"file_id"`
		} `json:"data"`
	}
	r.decode(t, &pg)
	var ids []string
	for _, d := range pg.Data {
		ids = append(ids, d.FileID)
	}
	return ids
}

// listIDs lists a list endpoint's ids (one page of 100).
func listIDs(t testing.TB, url, key string) []string {
	t.Helper()
	r := do(t, "GET", url, key, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", url, r.status, r.body)
	}
	var pg struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	r.decode(t, &pg)
	var ids []string
	for _, d := range pg.Data {
		ids = append(ids, d.ID)
	}
	return ids
}
