package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. To change the schema, append one:
// the next version, a name, and its SQL for each engine (statements
// separated by ";"). Never edit a migration that has shipped.
type migration struct {
	version          int
	name             string
	sqlite, postgres string
}

var migrations = []migration{
	{1, "keys and spend",
		`CREATE TABLE keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  hash BLOB NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  revoked_at INTEGER,
  version INTEGER NOT NULL
);
CREATE INDEX keys_version ON keys (version);
CREATE TABLE spend (
  scope TEXT NOT NULL,
  id TEXT NOT NULL,
  period TEXT NOT NULL,
  start INTEGER NOT NULL,
  nano_usd INTEGER NOT NULL DEFAULT 0,
  requests INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, id, period, start)
)`,
		`CREATE SEQUENCE key_version;
CREATE TABLE keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  hash BYTEA NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  revoked_at BIGINT,
  version BIGINT NOT NULL
);
CREATE INDEX keys_version ON keys (version);
CREATE TABLE spend (
  scope TEXT NOT NULL,
  id TEXT NOT NULL,
  period TEXT NOT NULL,
  start BIGINT NOT NULL,
  nano_usd BIGINT NOT NULL DEFAULT 0,
  requests BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, id, period, start)
)`},
}

// migrationLock is the PostgreSQL advisory lock that serializes replicas
// migrating one database at once.
const migrationLock = 0x5377_7964 // "Swyd"

// migrate applies the migrations the database lacks, each in a transaction,
// and refuses a database newer than this binary.
func (s *sqlStore) migrate(ctx context.Context) error {
	return s.migrateTo(ctx, migrations)
}

func (s *sqlStore) migrateTo(ctx context.Context, ms []migration) error {
	create := "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
	if _, err := s.db.ExecContext(ctx, create); err != nil && !isUnique(err) {
		// Two replicas creating it at once on PostgreSQL can collide on the
		// catalog; the table is there either way.
		if _, err2 := s.db.ExecContext(ctx, "SELECT 1 FROM schema_migrations LIMIT 1"); err2 != nil {
			return fmt.Errorf("migrating the %s store: %w", s.kind, err)
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.kind == kindPostgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
				return fmt.Errorf("locking the %s store for migration: %w", s.kind, err)
			}
		}
		var cur int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
			return fmt.Errorf("reading the %s store's schema version: %w", s.kind, err)
		}
		latest := 0
		if len(ms) > 0 {
			latest = ms[len(ms)-1].version
		}
		if cur > latest {
			return fmt.Errorf("the %s store's schema is at version %d, newer than this binary knows (%d): run a newer switchyard", s.kind, cur, latest)
		}
		for _, m := range ms {
			if m.version <= cur {
				continue
			}
			body := m.sqlite
			if s.kind == kindPostgres {
				body = m.postgres
			}
			for _, stmt := range splitSQL(body) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrating the %s store to version %d (%s): %w", s.kind, m.version, m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
				m.version, m.name, time.Now().Unix()); err != nil {
				return fmt.Errorf("recording migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

func splitSQL(body string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(body); i++ {
		if i == len(body) || body[i] == ';' {
			if stmt := trimSpace(body[start:i]); stmt != "" {
				out = append(out, stmt)
			}
			start = i + 1
		}
	}
	return out
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\n' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
