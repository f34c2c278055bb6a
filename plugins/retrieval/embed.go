package retrieval

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"switchyard/gateway"
)

// poolEmbedder embeds through an embeddings model pool of the config,
// through the gateway's own routing and dispatch (so a batching pool
// batches these calls with its clients').
type poolEmbedder struct {
	d    gateway.Dispatcher
	pool string
	dim  int
}

// embedTimeout bounds one embeddings call of a pool embedder.
const embedTimeout = 60 * time.Second

func (p *poolEmbedder) Dim() int     { return p.dim }
func (p *poolEmbedder) Name() string { return "pool:" + p.pool }

func (p *poolEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": p.pool, "input": texts, "encoding_format": "float"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, embedTimeout)
	defer cancel()
	resp, err := p.d.Do(ctx, &gateway.Request{Op: gateway.OpEmbeddings, Body: body})
	if err != nil {
		return nil, fmt.Errorf("embedding with the pool %s: %w", p.pool, err)
	}
	if resp.Stream != nil {
		resp.Stream.Close()
		return nil, fmt.Errorf("embedding with the pool %s: a stream answered", p.pool)
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("embedding with the pool %s: status %d: %.200s", p.pool, resp.Status, resp.Body)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("embedding with the pool %s: %w", p.pool, err)
	}
	if len(out.Data) != len(texts) {
		return nil, fmt.Errorf("embedding with the pool %s: %d vectors for %d inputs", p.pool, len(out.Data), len(texts))
	}
	vecs := make([][]float32, len(texts))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(vecs) || vecs[d.Index] != nil {
			return nil, fmt.Errorf("embedding with the pool %s: a vector with a bad index %d", p.pool, d.Index)
		}
		if len(d.Embedding) != p.dim {
			return nil, fmt.Errorf("embedding with the pool %s: %d dimensions, the collection's dimensions are %d", p.pool, len(d.Embedding), p.dim)
		}
		vecs[d.Index] = d.Embedding
	}
	return vecs, nil
}
