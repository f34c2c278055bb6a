package gateway

import (
	"context"
	"encoding/json"
	"fmt"
)

// EmbedTexts embeds texts with the embeddings model pool through d (the
// gateway's own routing, chain and dispatch, so a batching pool batches
// the call with its clients'), for stages and services that need vectors
// (the semantic cache, retrieval's collections). It returns one vector per
// text, in order, as the pool answered them; an answer that is not one
// non-empty vector per input, by index, is an error.
func EmbedTexts(ctx context.Context, d Dispatcher, pool string, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": pool, "input": texts, "encoding_format": "float"})
	if err != nil {
		return nil, err
	}
	resp, err := d.Do(ctx, &Request{Op: OpEmbeddings, Body: body})
	if err != nil {
		return nil, fmt.Errorf("embedding with the pool %s: %w", pool, err)
	}
	if resp.Stream != nil {
		resp.Stream.Close()
		return nil, fmt.Errorf("embedding with the pool %s: a stream answered", pool)
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("embedding with the pool %s: status %d: %.200s", pool, resp.Status, resp.Body)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("embedding with the pool %s: %w", pool, err)
	}
	if len(out.Data) != len(texts) {
		return nil, fmt.Errorf("embedding with the pool %s: %d vectors for %d inputs", pool, len(out.Data), len(texts))
	}
	vecs := make([][]float32, len(texts))
	for _, e := range out.Data {
		if e.Index < 0 || e.Index >= len(vecs) || vecs[e.Index] != nil || len(e.Embedding) == 0 {
			return nil, fmt.Errorf("embedding with the pool %s: a bad vector at index %d", pool, e.Index)
		}
		vecs[e.Index] = e.Embedding
	}
	return vecs, nil
}
