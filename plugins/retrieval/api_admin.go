package retrieval

import (
	"context"
	"encoding/json"
	"time"
)

// reindexAnswer is the answer of POST /admin/vector_stores/{id}/reindex.
type reindexAnswer struct {
	Object        string          `json:"object"`
	VectorStoreID string          `json:"vector_store_id"`
	Files         int             `json:"files"`
	Completed     int             `json:"completed"`
	Failed        int             `json:"failed"`
	Skipped       int             `json:"skipped"`
	Errors        []reindexFailed `json:"errors"`
	TookMS        int64           `json:"took_ms"`
}

type reindexFailed struct {
	FileID string     `json:"file_id"`
	Error  *lastError `json:"error"`
}

// serveAdminVectorStore answers POST /admin/vector_stores/{id}/reindex:
// every file attached to the vector store through the API is added again
// from its stored content, with its attributes and ACL (after a change of
// the collection's chunking or embedder). A file whose re-add fails keeps
// its document as it was (an Add is atomic) and is reported; one whose
// file was deleted is skipped.
func serveAdminVectorStore(a *apiCall) (any, error) {
	a.admin = true
	segs, ok := pathSegments(a.ctx, "/admin/vector_stores/")
	if !ok || len(segs) != 2 || segs[1] != "reindex" {
		return nil, errUnknownPath(a)
	}
	v, err := a.vectorStore(segs[0])
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	recs, err := a.st.be.List(ctx, kindAttach, v.id+"/")
	if err != nil {
		return nil, err
	}
	ans := reindexAnswer{Object: "vector_store.reindex", VectorStoreID: v.id, Errors: []reindexFailed{}}
	mu := a.st.lock(v.id)
	for _, rr := range recs {
		var r attachRec
		if json.Unmarshal(rr.Val, &r) != nil {
			continue
		}
		ans.Files++
		fl := a.st.lock(fileLock(r.File))
		fl.Lock()
		fb, err := a.st.be.Get(ctx, kindFile, r.File)
		if err != nil {
			fl.Unlock()
			ans.Skipped++
			continue
		}
		var f fileRec
		if err := json.Unmarshal(fb, &f); err != nil {
			fl.Unlock()
			ans.Skipped++
			continue
		}
		meta := map[string]any{}
		for k, val := range r.Attributes {
			switch k {
			case attrACLTenants, attrACLGroups, attrACLKeys:
			default:
				meta[k] = val
			}
		}
		if len(meta) == 0 {
			meta = nil
		}
		mu.Lock()
		_, le := a.index(ctx, v, &f, meta, r.ACL)
		if le == nil && r.Status != statusCompleted {
			r.Status, r.LastError = statusCompleted, nil
			err = a.st.putAttach(ctx, &r)
		}
		mu.Unlock()
		fl.Unlock()
		if err != nil {
			return nil, err
		}
		if le != nil {
			ans.Failed++
			ans.Errors = append(ans.Errors, reindexFailed{FileID: r.File, Error: le})
			continue
		}
		ans.Completed++
	}
	ans.TookMS = time.Since(start).Milliseconds()
	a.l.log.Info("vector store reindexed", "vector_store", v.id, "files", ans.Files, "completed", ans.Completed, "failed", ans.Failed, "skipped", ans.Skipped)
	return ans, nil
}
