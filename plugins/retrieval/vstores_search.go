package retrieval

import (
	"bytes"
	"encoding/json"
	"errors"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"switchyard/internal/retrieve"
)

// searchRequest is OpenAI's VectorStoreSearchRequest.
type searchRequest struct {
	Query          json.RawMessage `json:"query"`
	Filters        json.RawMessage `json:"filters"`
	MaxNumResults  *int            `json:"max_num_results"`
	RankingOptions *struct {
		Ranker         string   `json:"ranker"`
		ScoreThreshold *float64 `json:"score_threshold"`
	} `json:"ranking_options"`
	RewriteQuery bool `json:"rewrite_query"`
}

// Search bounds.
const (
	maxSearchResults = 50
	maxQueries       = 10
	maxQueryBytes    = 8 << 10
)

// parseQuery reads the query: a string or an array of strings.
func parseQuery(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errInvalid("query", "Missing required parameter: 'query'.")
	}
	var qs []string
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &qs); err != nil {
			return nil, errInvalid("query", "Invalid 'query': expected a string or an array of strings.")
		}
	} else {
		var q string
		if err := json.Unmarshal(raw, &q); err != nil {
			return nil, errInvalid("query", "Invalid 'query': expected a string or an array of strings.")
		}
		qs = []string{q}
	}
	if len(qs) == 0 || len(qs) > maxQueries {
		return nil, errInvalid("query", "Invalid 'query': 1 to %d queries.", maxQueries)
	}
	for _, q := range qs {
		if strings.TrimSpace(q) == "" {
			return nil, errInvalid("query", "Invalid 'query': a query must not be empty.")
		}
		if len(q) > maxQueryBytes || !utf8.ValidString(q) {
			return nil, errInvalid("query", "Invalid 'query': a query is UTF-8 of at most %d bytes.", maxQueryBytes)
		}
	}
	return qs, nil
}

// searchPage is OpenAI's VectorStoreSearchResultsPage.
type searchPage struct {
	Object      string       `json:"object"`
	SearchQuery []string     `json:"search_query"`
	Data        []searchItem `json:"data"`
	HasMore     bool         `json:"has_more"`
	NextPage    *string      `json:"next_page"`
}

type searchItem struct {
	FileID     string         `json:"file_id"`
	Filename   string         `json:"filename"`
	Score      float64        `json:"score"`
	Attributes map[string]any `json:"attributes"`
	Content    []textPart     `json:"content"`
}

// search answers POST /v1/vector_stores/{id}/search: a hybrid search of
// each query (the ACL applied before ranking), merged by chunk (the best
// score), best first.
func (a *apiCall) search(v *vstore) (any, error) {
	var req searchRequest
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	qs, err := parseQuery(req.Query)
	if err != nil {
		return nil, err
	}
	n := retrieve.DefaultTopK
	if req.MaxNumResults != nil {
		n = *req.MaxNumResults
		if n < 1 || n > maxSearchResults {
			return nil, errInvalid("max_num_results", "Invalid 'max_num_results': %d (from 1 to %d).", n, maxSearchResults)
		}
	}
	q := retrieve.Query{TopK: n, Mode: retrieve.ModeHybrid, Principal: a.rp}
	if ro := req.RankingOptions; ro != nil {
		switch ro.Ranker {
		case "", "auto", "none", "default-2024-11-15":
		default:
			return nil, errInvalid("ranking_options.ranker", "Invalid 'ranking_options.ranker': %q (want auto, none or default-2024-11-15).", ro.Ranker)
		}
		if t := ro.ScoreThreshold; t != nil {
			if *t < 0 || *t > 1 {
				return nil, errInvalid("ranking_options.score_threshold", "Invalid 'ranking_options.score_threshold': %v (from 0 to 1).", *t)
			}
			q.MinScore = *t
		}
	}
	if f := bytes.TrimSpace(req.Filters); len(f) > 0 && string(f) != "null" {
		filter, err := retrieve.ParseFilter(f)
		if err != nil {
			var fe *retrieve.FilterError
			if errors.As(err, &fe) {
				p := "filters"
				if fe.Path != "" {
					p += "." + fe.Path
				}
				return nil, errInvalid(p, "Invalid '%s': %s", p, fe.Msg)
			}
			return nil, errInvalid("filters", "Invalid 'filters': %s", cleanErr(err))
		}
		q.Filter = filter
	}
	best := map[string]retrieve.Hit{}
	for _, text := range qs {
		q.Text = text
		hits, err := v.coll.C.Search(a.ctx, q)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			if old, ok := best[h.ChunkID]; !ok || h.Score > old.Score {
				best[h.ChunkID] = h
			}
		}
	}
	hits := make([]retrieve.Hit, 0, len(best))
	for _, h := range best {
		hits = append(hits, h)
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].ChunkID < hits[j].ChunkID
	})
	if len(hits) > n {
		hits = hits[:n]
	}
	pg := searchPage{Object: "vector_store.search_results.page", SearchQuery: qs, Data: []searchItem{}}
	for _, h := range hits {
		it := searchItem{FileID: h.DocID, Filename: a.filename(v, h.DocID), Score: min(max(h.Score, 0), 1),
			Attributes: h.Metadata, Content: []textPart{{Type: "text", Text: h.Text}}}
		if it.Attributes == nil {
			it.Attributes = map[string]any{}
		}
		pg.Data = append(pg.Data, it)
	}
	return pg, nil
}

// filename is the file name of a document: an attached file's name, else
// the last element of its id (a source file's path).
func (a *apiCall) filename(v *vstore, id string) string {
	if d, ok := v.coll.C.Doc(id); ok && isAPIDoc(d.ID, d.Version) && d.Title != "" {
		return d.Title
	}
	return path.Base(id)
}
