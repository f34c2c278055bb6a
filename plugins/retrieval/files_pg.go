package retrieval

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// pgBackend keeps the APIs' files and records in PostgreSQL, in two tables
// it creates if they are missing (under an advisory lock, so replicas
// starting together do not race):
//
//	switchyard_api_files   (id text primary key, content bytea)
//	switchyard_api_records (kind text, key text, value bytea, primary key (kind, key))
//
// A file's record is in switchyard_api_records (kind "file"), written in
// the transaction that writes its content. Every read goes to the
// database, so replicas sharing it see each other's files at once.
type pgBackend struct {
	db  *sql.DB
	dsn string // to scrub from errors; never printed
}

// pgSchema is the APIs' schema; each statement is idempotent.
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS switchyard_api_files (id text PRIMARY KEY, content bytea NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS switchyard_api_records (kind text NOT NULL, key text NOT NULL, value bytea NOT NULL, PRIMARY KEY (kind, key))`,
}

// pgSchemaLock is the advisory lock key taken while creating the schema.
const pgSchemaLock = 0x5357_4150_4946 // "SWAPIF"

// pgTimeout bounds one statement of the backend.
const pgTimeout = 30 * time.Second

func openPGBackend(ctx context.Context, dsn string) (*pgBackend, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the files store in PostgreSQL at %s: %w", redactPG(dsn), scrubPG(err, dsn))
	}
	db.SetMaxOpenConns(8)
	b := &pgBackend{db: db, dsn: dsn}
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	err = b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgSchemaLock)); err != nil {
			return err
		}
		for _, q := range pgSchema {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing the files store in PostgreSQL at %s: %w", redactPG(dsn), scrubPG(err, dsn))
	}
	return b, nil
}

// redactPG names a PostgreSQL server without its credentials.
func redactPG(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return u.Host + u.Path
	}
	return "the configured DSN"
}

// scrubPG removes the DSN and its password from an error's text.
func scrubPG(err error, dsn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "[dsn]")
	}
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "[redacted]")
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func (b *pgBackend) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("files store (PostgreSQL): %w", scrubPG(err, b.dsn))
}

func (b *pgBackend) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (b *pgBackend) PutFile(ctx context.Context, id string, rec, content []byte) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	if content == nil {
		content = []byte{}
	}
	return b.wrap(b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO switchyard_api_files (id, content) VALUES ($1, $2)`, id, content); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO switchyard_api_records (kind, key, value) VALUES ($1, $2, $3)`, kindFile, id, rec)
		return err
	}))
}

func (b *pgBackend) FileContent(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	var c []byte
	err := b.db.QueryRowContext(ctx, `SELECT content FROM switchyard_api_files WHERE id = $1`, id).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	return c, b.wrap(err)
}

func (b *pgBackend) DeleteFile(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	return b.wrap(b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM switchyard_api_records WHERE kind = $1 AND key = $2`, kindFile, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM switchyard_api_files WHERE id = $1`, id)
		return err
	}))
}

func (b *pgBackend) Put(ctx context.Context, kind, key string, val []byte) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	_, err := b.db.ExecContext(ctx, `INSERT INTO switchyard_api_records (kind, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value`, kind, key, val)
	return b.wrap(err)
}

func (b *pgBackend) Get(ctx context.Context, kind, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT value FROM switchyard_api_records WHERE kind = $1 AND key = $2`, kind, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	return v, b.wrap(err)
}

func (b *pgBackend) Delete(ctx context.Context, kind, key string) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	_, err := b.db.ExecContext(ctx, `DELETE FROM switchyard_api_records WHERE kind = $1 AND key = $2`, kind, key)
	return b.wrap(err)
}

func (b *pgBackend) List(ctx context.Context, kind, prefix string) ([]record, error) {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	// A prefix match without LIKE, whose wildcards a key could hold.
	rows, err := b.db.QueryContext(ctx, `SELECT key, value FROM switchyard_api_records
		WHERE kind = $1 AND left(key, length($2)) = $2 ORDER BY key COLLATE "C"`, kind, prefix)
	if err != nil {
		return nil, b.wrap(err)
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.Key, &r.Val); err != nil {
			return nil, b.wrap(err)
		}
		if strings.HasPrefix(r.Key, prefix) {
			out = append(out, r)
		}
	}
	return out, b.wrap(rows.Err())
}

func (b *pgBackend) Close() error { return b.db.Close() }
