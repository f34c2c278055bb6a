package retrieval

import (
	"context"
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
	ctx, cancel := context.WithTimeout(ctx, embedTimeout)
	defer cancel()
	vecs, err := gateway.EmbedTexts(ctx, p.d, p.pool, texts)
	if err != nil {
		return nil, err
	}
	for _, v := range vecs {
		if len(v) != p.dim {
			return nil, fmt.Errorf("embedding with the pool %s: %d dimensions, the collection's dimensions are %d", p.pool, len(v), p.dim)
		}
	}
	return vecs, nil
}
