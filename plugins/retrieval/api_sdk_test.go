package retrieval_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"switchyard/internal/gwtest"
)

// sdkClient is the official Go SDK against g as key, every answer checked
// against the spec.
func sdkClient(t *testing.T, g *gwtest.Gateway, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(specClient(t)))
}

// TestGoSDK drives the Files and Vector Stores APIs end to end with the
// official Go SDK: upload, list, retrieve, content, delete; vector store
// create, list, retrieve, update, delete; attach with attributes (and the
// poll helpers), file batches, search with filters; typed errors.
func TestGoSDK(t *testing.T) {
	g := gwtest.Start(t, apiConfig(t, t.TempDir(), false, ""))
	c := sdkClient(t, g, apiKeys["acme-hr"])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Files.
	up := func(name, content string) *openai.FileObject {
		t.Helper()
		f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(content), name, "text/markdown"), Purpose: openai.FilePurposeAssistants})
		if err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
		return f
	}
	f1 := up("pricing.md", "# Pricing\n\nThe platypus plan costs nine dollars a month.\n")
	f2 := up("faq.md", "# FAQ\n\nRefunds are processed within five days by the wombat team.\n")
	if !strings.HasPrefix(f1.ID, "file-") || f1.Filename != "pricing.md" || f1.Bytes == 0 || f1.Purpose != "assistants" {
		t.Fatalf("file object %+v", f1)
	}
	got, err := c.Files.Get(ctx, f1.ID)
	if err != nil || got.ID != f1.ID || got.Filename != "pricing.md" {
		t.Fatalf("get: %v %+v", err, got)
	}
	page, err := c.Files.List(ctx, openai.FileListParams{Order: openai.FileListParamsOrderAsc, Limit: openai.Int(1)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != f1.ID || !page.HasMore {
		t.Fatalf("list page 1: %v %+v", err, page)
	}
	var all []string
	iter := c.Files.ListAutoPaging(ctx, openai.FileListParams{Order: openai.FileListParamsOrderAsc, Limit: openai.Int(1)})
	for iter.Next() {
		all = append(all, iter.Current().ID)
	}
	if err := iter.Err(); err != nil || !slices.Equal(all, []string{f1.ID, f2.ID}) {
		t.Fatalf("auto-paging: %v %v", err, all)
	}
	resp, err := c.Files.Content(ctx, f1.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "platypus plan") {
		t.Fatalf("content %q", b)
	}
	// Another tenant sees none of it.
	other := sdkClient(t, g, apiKeys["globex"])
	_, err = other.Files.Get(ctx, f1.ID)
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 404 || !strings.Contains(ae.Message, "No such File object: "+f1.ID) {
		t.Fatalf("globex get: %v", err)
	}

	// Vector stores.
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("kb"), FileIDs: []string{f1.ID},
		Metadata: shared.Metadata{"team": "support"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vs.ID, "vs_") || vs.Name != "kb" || vs.FileCounts.Completed != 1 || vs.Metadata["team"] != "support" || vs.Status != "completed" {
		t.Fatalf("vector store %+v", vs)
	}
	vf, err := c.VectorStores.Files.NewAndPoll(ctx, vs.ID, openai.VectorStoreFileNewParams{FileID: f2.ID,
		Attributes: map[string]openai.VectorStoreFileNewParamsAttributeUnion{
			"topic": {OfString: openai.String("refunds")}, "year": {OfFloat: openai.Float(2026)}, "public": {OfBool: openai.Bool(true)}}}, 10)
	if err != nil || vf.Status != "completed" || vf.Attributes["topic"].OfString != "refunds" {
		t.Fatalf("attach: %v %+v", err, vf)
	}
	vsGot, err := c.VectorStores.Get(ctx, vs.ID)
	if err != nil || vsGot.FileCounts.Completed != 2 || vsGot.UsageBytes != f1.Bytes+f2.Bytes {
		t.Fatalf("get vector store: %v %+v", err, vsGot)
	}
	vsUpd, err := c.VectorStores.Update(ctx, vs.ID, openai.VectorStoreUpdateParams{Name: openai.String("kb2"), Metadata: shared.Metadata{"team": "sales"}})
	if err != nil || vsUpd.Name != "kb2" || vsUpd.Metadata["team"] != "sales" {
		t.Fatalf("update: %v %+v", err, vsUpd)
	}
	vsl, err := c.VectorStores.List(ctx, openai.VectorStoreListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vsl.Data {
		names = append(names, v.ID)
	}
	if !slices.Contains(names, vs.ID) || !slices.Contains(names, "docs") || !slices.Contains(names, "small") {
		t.Fatalf("vector stores %v", names)
	}
	if l, err := other.VectorStores.List(ctx, openai.VectorStoreListParams{}); err != nil || slices.ContainsFunc(l.Data, func(v openai.VectorStore) bool { return v.ID == vs.ID }) {
		t.Fatalf("globex lists acme's vector store: %v", err)
	}

	// Files of the vector store.
	files, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{})
	if err != nil || len(files.Data) != 2 {
		t.Fatalf("vector store files: %v %+v", err, files)
	}
	upd, err := c.VectorStores.Files.Update(ctx, vs.ID, f2.ID, openai.VectorStoreFileUpdateParams{
		Attributes: map[string]openai.VectorStoreFileUpdateParamsAttributeUnion{"topic": {OfString: openai.String("billing")}}})
	if err != nil || upd.Attributes["topic"].OfString != "billing" {
		t.Fatalf("update attributes: %v %+v", err, upd)
	}
	content, err := c.VectorStores.Files.Content(ctx, vs.ID, f2.ID)
	if err != nil || len(content.Data) == 0 || !strings.Contains(content.Data[0].Text, "wombat") {
		t.Fatalf("vector store file content: %v %+v", err, content)
	}

	// Search, with filters.
	res, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("how long do refunds take")}, MaxNumResults: openai.Int(3)})
	if err != nil || len(res.Data) == 0 || res.Data[0].FileID != f2.ID || res.Data[0].Filename != "faq.md" || res.Data[0].Score <= 0 {
		t.Fatalf("search: %v %+v", err, res)
	}
	res, err = c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("how long do refunds take")},
		Filters: openai.VectorStoreSearchParamsFiltersUnion{OfComparisonFilter: &shared.ComparisonFilterParam{
			Key: "topic", Type: shared.ComparisonFilterTypeEq, Value: shared.ComparisonFilterValueUnionParam{OfString: openai.String("nothing")}}}})
	if err != nil || len(res.Data) != 0 {
		t.Fatalf("filtered search: %v %+v", err, res)
	}
	res, err = c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfStringArray: []string{"platypus plan", "refunds"}},
		Filters: openai.VectorStoreSearchParamsFiltersUnion{OfCompoundFilter: &shared.CompoundFilterParam{Type: shared.CompoundFilterTypeOr,
			Filters: []shared.CompoundFilterFilterUnionParam{
				{OfComparison: &shared.ComparisonFilterParam{Key: "topic", Type: shared.ComparisonFilterTypeEq, Value: shared.ComparisonFilterValueUnionParam{OfString: openai.String("billing")}}},
				{OfComparison: &shared.ComparisonFilterParam{Key: "year", Type: shared.ComparisonFilterTypeGte, Value: shared.ComparisonFilterValueUnionParam{OfFloat: openai.Float(2030)}}},
			}}}})
	if err != nil || len(res.Data) == 0 {
		t.Fatalf("compound filter search: %v %+v", err, res)
	}
	for _, d := range res.Data {
		if d.FileID != f2.ID {
			t.Fatalf("compound filter let %s through", d.FileID)
		}
	}

	// File batches, with the upload helper.
	batch, err := c.VectorStores.FileBatches.UploadAndPoll(ctx, vs.ID, []openai.FileNewParams{
		{File: openai.File(strings.NewReader("Koalas sleep twenty hours a day."), "koala.txt", "text/plain"), Purpose: openai.FilePurposeAssistants},
		{File: openai.File(strings.NewReader("Echidnas lay eggs."), "echidna.txt", "text/plain"), Purpose: openai.FilePurposeAssistants},
	}, nil, 10)
	if err != nil || batch.Status != "completed" || batch.FileCounts.Completed != 2 || batch.FileCounts.Total != 2 {
		t.Fatalf("batch: %v %+v", err, batch)
	}
	bfiles, err := c.VectorStores.FileBatches.ListFiles(ctx, vs.ID, batch.ID, openai.VectorStoreFileBatchListFilesParams{})
	if err != nil || len(bfiles.Data) != 2 {
		t.Fatalf("batch files: %v %+v", err, bfiles)
	}
	if _, err := c.VectorStores.FileBatches.Cancel(ctx, vs.ID, batch.ID); err != nil {
		t.Fatal(err)
	}
	batch2, err := c.VectorStores.FileBatches.NewAndPoll(ctx, vs.ID, openai.VectorStoreFileBatchNewParams{
		Files: []openai.VectorStoreFileBatchNewParamsFile{{FileID: f1.ID, Attributes: map[string]openai.VectorStoreFileBatchNewParamsFileAttributeUnion{"topic": {OfString: openai.String("pricing")}}}}}, 10)
	if err != nil || batch2.FileCounts.Completed != 1 {
		t.Fatalf("batch of files: %v %+v", err, batch2)
	}
	if got, err := c.VectorStores.FileBatches.Get(ctx, vs.ID, batch2.ID); err != nil || got.ID != batch2.ID {
		t.Fatalf("get batch: %v", err)
	}
	// The upload-and-attach helper.
	vf, err = c.VectorStores.Files.UploadAndPoll(ctx, vs.ID, openai.FileNewParams{File: openai.File(strings.NewReader("Quolls are marsupials."), "quoll.txt", "text/plain"), Purpose: openai.FilePurposeAssistants}, 10)
	if err != nil || vf.Status != "completed" {
		t.Fatalf("upload and poll: %v %+v", err, vf)
	}

	// A config collection is a vector store too.
	res, err = c.VectorStores.Search(ctx, "docs", openai.VectorStoreSearchParams{Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("outlier ejection")}})
	if err != nil || len(res.Data) == 0 || !strings.HasSuffix(res.Data[0].FileID, "/routing.md") {
		t.Fatalf("search docs: %v %+v", err, res)
	}
	if _, err := c.VectorStores.Delete(ctx, "docs"); !errors.As(err, &ae) || ae.StatusCode != 400 {
		t.Fatalf("deleting a config vector store: %v", err)
	}

	// Deletes.
	if d, err := c.VectorStores.Files.Delete(ctx, vs.ID, f2.ID); err != nil || !d.Deleted {
		t.Fatalf("detach: %v", err)
	}
	if _, err := c.VectorStores.Files.Get(ctx, vs.ID, f2.ID); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("detached file: %v", err)
	}
	if d, err := c.Files.Delete(ctx, f1.ID); err != nil || !d.Deleted {
		t.Fatalf("delete file: %v", err)
	}
	ids := searchIDs(t, g.URL, apiKeys["acme-hr"], vs.ID, map[string]any{"query": "platypus plan"})
	if slices.Contains(ids, f1.ID) {
		t.Fatalf("a deleted file is still found: %v", ids)
	}
	if d, err := c.VectorStores.Delete(ctx, vs.ID); err != nil || !d.Deleted {
		t.Fatalf("delete vector store: %v", err)
	}
	if _, err := c.VectorStores.Get(ctx, vs.ID); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("deleted vector store: %v", err)
	}
	_ = http.StatusOK
}
