package retrieval

import (
	"context"
	"log/slog"
	"time"

	"switchyard/gateway/config"
	"switchyard/internal/retrieve"
	"switchyard/internal/retrieve/pgstore"
)

// pgConnectTimeout bounds connecting to PostgreSQL and creating the schema.
const pgConnectTimeout = 30 * time.Second

// openPG opens a collection's PostgreSQL store (its own small pool) and
// returns it with its close function and the follower that keeps the
// collection's index in step with the other replicas' writes. The
// collection's name in the database is its name and its embedder, as a
// local collection's directory is: vectors of two embedders never mix.
func openPG(cfg *config.Config, spec config.Collection, log *slog.Logger) (retrieve.Store, func(*retrieve.Collection) (func(), error), func() error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgConnectTimeout)
	defer cancel()
	st, err := pgstore.Open(ctx, cfg.Store.Postgres.DSN.Value(), spec.Name+"/"+embedderDir(spec), pgstore.Options{MaxConns: 4, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	follow := func(c *retrieve.Collection) (func(), error) {
		return retrieve.Follow(context.Background(), c, log.With("collection", spec.Name))
	}
	return st, follow, func() error { st.Close(); return nil }, nil
}
