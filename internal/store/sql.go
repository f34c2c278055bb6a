package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// One implementation serves both engines through database/sql: the SQL is
// written once with ? placeholders (rewritten to $n for PostgreSQL) and
// differs only where the engines do, in the migrations and in how a key
// version is drawn.

const (
	kindSQLite   = "sqlite"
	kindPostgres = "postgres"
)

type sqlStore struct {
	db   *sql.DB
	kind string
}

var _ Store = (*sqlStore)(nil)

// Open opens (and migrates) the store the options select.
func Open(ctx context.Context, o Options) (Store, error) {
	var s *sqlStore
	if o.PostgresDSN != "" {
		db, err := sql.Open("pgx", o.PostgresDSN)
		if err != nil {
			return nil, fmt.Errorf("opening the PostgreSQL store at %s: %w", redactDSN(o.PostgresDSN), err)
		}
		db.SetMaxOpenConns(16)
		s = &sqlStore{db: db, kind: kindPostgres}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("connecting to the PostgreSQL store at %s: %w", redactDSN(o.PostgresDSN), scrub(err, o.PostgresDSN))
		}
	} else {
		if o.DataDir == "" {
			return nil, errors.New("opening the SQLite store: no data directory")
		}
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("making the data directory %s: %w", o.DataDir, err)
		}
		path := filepath.Join(o.DataDir, "switchyard.db")
		dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("opening the SQLite store at %s: %w", path, err)
		}
		// One connection: SQLite has one writer, and a single connection
		// serializes this process's transactions without SQLITE_BUSY.
		db.SetMaxOpenConns(1)
		s = &sqlStore{db: db, kind: kindSQLite}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("opening the SQLite store at %s: %w", path, err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// redactDSN names a PostgreSQL server without its password.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return u.Host + u.Path
	}
	return "the configured DSN"
}

// scrub removes a DSN's password from an error's text.
func scrub(err error, dsn string) error {
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
			return errors.New(strings.ReplaceAll(err.Error(), p, "[redacted]"))
		}
	}
	return err
}

func (s *sqlStore) Kind() string { return s.kind }

func (s *sqlStore) Close() error { return s.db.Close() }

// q rewrites ? placeholders to $1, $2... for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if s.kind != kindPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func micros(t time.Time) int64 { return t.UTC().Truncate(time.Microsecond).UnixMicro() }

func fromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

// isUnique reports a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (s *sqlStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// keyWriteLock is the PostgreSQL advisory lock that serializes key writes.
const keyWriteLock = 0x5377_6b65_7973 // "Swkeys"

// nextVersion draws a key version greater than every one before. Readers
// follow versions (KeysSince), so versions must become visible in order:
// on PostgreSQL a transaction-level advisory lock serializes key writes
// (rare: admin calls), so no transaction with a lower version commits after
// one with a higher; on SQLite the write transaction does.
func (s *sqlStore) nextVersion(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	var err error
	if s.kind == kindPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(keyWriteLock)); err != nil {
			return 0, err
		}
		err = tx.QueryRowContext(ctx, "SELECT nextval('key_version')").Scan(&v)
	} else {
		err = tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) + 1 FROM keys").Scan(&v)
	}
	return v, err
}

const keyColumns = "id, tenant, hash, prefix, spec, created_at, updated_at, revoked_at, version"

func scanKey(row interface{ Scan(...any) error }) (Key, error) {
	var k Key
	var hash []byte
	var spec string
	var created, updated int64
	var revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Tenant, &hash, &k.Prefix, &spec, &created, &updated, &revoked, &k.Version); err != nil {
		return Key{}, err
	}
	copy(k.Hash[:], hash)
	k.Spec = []byte(spec)
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	if revoked.Valid {
		k.RevokedAt = fromMicros(revoked.Int64)
	}
	return k, nil
}

func (s *sqlStore) CreateKey(ctx context.Context, k Key) (Key, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = k.CreatedAt
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		v, err := s.nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		k.Version = v
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO keys ("+keyColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)"),
			k.ID, k.Tenant, k.Hash[:], k.Prefix, string(k.Spec), micros(k.CreatedAt), micros(k.UpdatedAt), v)
		return err
	})
	switch {
	case isUnique(err):
		return Key{}, fmt.Errorf("creating key %q: %w", k.ID, ErrExists)
	case err != nil:
		return Key{}, fmt.Errorf("creating key %q: %w", k.ID, err)
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(micros(k.CreatedAt)), fromMicros(micros(k.UpdatedAt))
	k.RevokedAt = time.Time{}
	return k, nil
}

func (s *sqlStore) GetKey(ctx context.Context, id string) (Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, s.q("SELECT "+keyColumns+" FROM keys WHERE id = ?"), id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Key{}, fmt.Errorf("reading key %q: %w", id, ErrNotFound)
	case err != nil:
		return Key{}, fmt.Errorf("reading key %q: %w", id, err)
	}
	return k, nil
}

func (s *sqlStore) listKeys(ctx context.Context, query string, args ...any) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *sqlStore) ListKeys(ctx context.Context) ([]Key, error) {
	ks, err := s.listKeys(ctx, "SELECT "+keyColumns+" FROM keys ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	return ks, nil
}

func (s *sqlStore) KeysSince(ctx context.Context, version int64) ([]Key, error) {
	ks, err := s.listKeys(ctx, "SELECT "+keyColumns+" FROM keys WHERE version > ? ORDER BY version", version)
	if err != nil {
		return nil, fmt.Errorf("reading keys changed since version %d: %w", version, err)
	}
	return ks, nil
}

// change updates one active key in a transaction: set is the SET clause
// (version and updated_at are added), args its arguments.
func (s *sqlStore) change(ctx context.Context, what, id string, at time.Time, set string, args ...any) (Key, error) {
	var k Key
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanKey(tx.QueryRowContext(ctx, s.q("SELECT "+keyColumns+" FROM keys WHERE id = ?"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !cur.RevokedAt.IsZero() {
			return ErrRevoked
		}
		v, err := s.nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		all := append(append([]any{}, args...), micros(at), v, id)
		if _, err := tx.ExecContext(ctx, s.q("UPDATE keys SET "+set+", updated_at = ?, version = ? WHERE id = ?"), all...); err != nil {
			return err
		}
		k, err = scanKey(tx.QueryRowContext(ctx, s.q("SELECT "+keyColumns+" FROM keys WHERE id = ?"), id))
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrRevoked):
		return Key{}, fmt.Errorf("%s key %q: %w", what, id, err)
	case isUnique(err):
		return Key{}, fmt.Errorf("%s key %q: %w", what, id, ErrExists)
	case err != nil:
		return Key{}, fmt.Errorf("%s key %q: %w", what, id, err)
	}
	return k, nil
}

func (s *sqlStore) RevokeKey(ctx context.Context, id string, at time.Time) (Key, error) {
	return s.change(ctx, "revoking", id, at, "revoked_at = ?", micros(at))
}

func (s *sqlStore) RotateKey(ctx context.Context, id string, hash [32]byte, prefix string, at time.Time) (Key, error) {
	return s.change(ctx, "rotating", id, at, "hash = ?, prefix = ?", hash[:], prefix)
}

const spendUpsert = `INSERT INTO spend (scope, id, period, start, nano_usd, requests, input_tokens, output_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (scope, id, period, start) DO UPDATE SET
  nano_usd = spend.nano_usd + excluded.nano_usd,
  requests = spend.requests + excluded.requests,
  input_tokens = spend.input_tokens + excluded.input_tokens,
  output_tokens = spend.output_tokens + excluded.output_tokens
RETURNING nano_usd, requests, input_tokens, output_tokens`

func (s *sqlStore) AddSpend(ctx context.Context, deltas []SpendDelta) ([]SpendRow, error) {
	out := make([]SpendRow, len(deltas))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		q := s.q(spendUpsert)
		for i, d := range deltas {
			r := d
			if err := tx.QueryRowContext(ctx, q, d.Scope, d.ID, d.Period, micros(d.Start), d.NanoUSD, d.Requests, d.InputTokens, d.OutputTokens).
				Scan(&r.NanoUSD, &r.Requests, &r.InputTokens, &r.OutputTokens); err != nil {
				return err
			}
			r.Start = fromMicros(micros(d.Start))
			out[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding spend: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ListSpend(ctx context.Context, f SpendFilter) ([]SpendRow, error) {
	query := "SELECT scope, id, period, start, nano_usd, requests, input_tokens, output_tokens FROM spend WHERE 1=1"
	var args []any
	if f.Scope != "" {
		query += " AND scope = ?"
		args = append(args, f.Scope)
	}
	if f.ID != "" {
		query += " AND id = ?"
		args = append(args, f.ID)
	}
	if f.Period != "" {
		query += " AND period = ?"
		args = append(args, f.Period)
	}
	if !f.Since.IsZero() {
		query += " AND start >= ?"
		args = append(args, micros(f.Since))
	}
	query += " ORDER BY scope, id, period, start"
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing spend: %w", err)
	}
	defer rows.Close()
	var out []SpendRow
	for rows.Next() {
		var r SpendRow
		var start int64
		if err := rows.Scan(&r.Scope, &r.ID, &r.Period, &start, &r.NanoUSD, &r.Requests, &r.InputTokens, &r.OutputTokens); err != nil {
			return nil, fmt.Errorf("listing spend: %w", err)
		}
		r.Start = fromMicros(start)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing spend: %w", err)
	}
	return out, nil
}
