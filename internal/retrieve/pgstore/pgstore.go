// Package pgstore keeps retrieval collections in PostgreSQL, the source of
// truth shared by the gateway's replicas: a retrieve.Store and
// retrieve.ChangeFeed per collection, so that each replica's in-process
// index (retrieve.Collection) follows what any replica writes.
//
//	db, err := pgstore.Connect(ctx, dsn, pgstore.Options{})   // one per process
//	st, err := db.Collection(ctx, "handbook")
//	c, err := retrieve.New(ctx, retrieve.Options{Embedder: e, Store: st})
//	stop, err := retrieve.Follow(ctx, c, log.With("collection", "handbook"))
//	...
//	stop(); db.Close()
//
// # Schema
//
// Created by Connect if missing (CREATE ... IF NOT EXISTS in a
// transaction holding an advisory lock, so replicas starting together do
// not race), in the DSN's database and search path:
//
//	CREATE SEQUENCE retrieval_seq;
//	CREATE TABLE retrieval_collections (
//		name       TEXT PRIMARY KEY,
//		pruned_seq BIGINT NOT NULL DEFAULT 0,  -- greatest seq of a pruned tombstone
//		created_at TIMESTAMPTZ NOT NULL DEFAULT now());
//	CREATE TABLE retrieval_docs (
//		collection TEXT NOT NULL REFERENCES retrieval_collections (name),
//		id         TEXT NOT NULL,
//		seq        BIGINT NOT NULL,            -- from retrieval_seq, at every change
//		deleted    BOOLEAN NOT NULL DEFAULT false,
//		doc        JSONB,                      -- retrieve.StoredDoc without Vectors; NULL when deleted
//		vectors    BYTEA,                      -- len(Chunks) × Dim float32, little-endian; NULL when deleted
//		updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
//		PRIMARY KEY (collection, id));
//	-- and indexes on (collection, seq), and on (collection, updated_at) of tombstones
//
// One table set holds every collection. The document is JSONB so that an
// operator can read it (doc->'metadata', doc->'acl'); the vectors are raw
// float32 bits, so what a collection stored comes back bit for bit.
//
// # Sequence numbers and tombstones
//
// Every Put and Delete takes the collection's row lock (SELECT ... FOR NO
// KEY UPDATE on retrieval_collections) and then draws the document's seq
// from retrieval_seq, in one implicit transaction: so within a collection
// the numbers increase in commit order, across every replica, and a
// reader that sees seq n has seen every change of the collection numbered
// below n (the property Changes and its cursor rely on). Writers of one
// collection are serialized by that lock; a Collection serializes its
// writers anyway. The numbers are global (one sequence), with gaps.
//
// Delete keeps a tombstone (deleted, doc and vectors NULL, a new seq) so
// that replicas learn of the deletion; tombstones older than
// Options.TombstoneRetention (default 7 days) are pruned when a
// collection is opened (DB.Collection, Open) and by Prune, and
// retrieval_collections.pruned_seq remembers the greatest pruned, so that
// Changes from before it fails with retrieve.ErrChangesPruned and the
// replica reads the whole collection again.
//
// # Notifications
//
// Each change calls pg_notify('switchyard_retrieval', '<seq> <collection>')
// in its transaction, so the notification is sent on commit, and only
// then. Watch holds a dedicated connection (application_name
// switchyard-retrieval-listen) with LISTEN switchyard_retrieval, notifies
// for its collection's payloads, and on losing the connection reconnects
// with back-off (100 ms doubling to 5 s) and notifies once it listens
// again. One connection per watched collection per replica: a replica
// following many collections would want one listener for all of them
// (the payload names the collection so it can be shared).
//
// # Another vector backend
//
// The vectors are stored, not searched: the collection searches them in
// process (retrieve's HNSW and BM25, partitioned by ACL). A backend that
// searches in the database (pgvector, when its package is available, or a
// dedicated vector database) is another retrieve.Store, with a vector(dim)
// column or the database's own collection in place of the BYTEA, passing
// the same conformance suite (internal/retrieve/storetest); searching
// there instead of in process would be a search interface beside Store,
// not a change of it.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"switchyard/internal/retrieve"
)

// Channel is the notification channel of every collection.
const Channel = "switchyard_retrieval"

const (
	// listenerApp is the application_name of Watch's connections.
	listenerApp = "switchyard-retrieval-listen"
	poolApp     = "switchyard-retrieval"
	// DefaultTombstoneRetention is how long tombstones are kept.
	DefaultTombstoneRetention = 7 * 24 * time.Hour
	// pageDocs is how many documents Scan and Changes read a query.
	pageDocs = 32
	// maxName bounds a collection name (a notification payload is at
	// most 8000 bytes).
	maxName = 256
	// schemaLock is the advisory lock key of the schema's creation.
	schemaLock = 0x7379_7264_0001 // "syrd", 1
)

const schema = `
CREATE SEQUENCE IF NOT EXISTS retrieval_seq;
CREATE TABLE IF NOT EXISTS retrieval_collections (
	name       TEXT PRIMARY KEY,
	pruned_seq BIGINT NOT NULL DEFAULT 0,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS retrieval_docs (
	collection TEXT NOT NULL REFERENCES retrieval_collections (name),
	id         TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	deleted    BOOLEAN NOT NULL DEFAULT false,
	doc        JSONB,
	vectors    BYTEA,
	updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (collection, id),
	CHECK (deleted = (doc IS NULL) AND deleted = (vectors IS NULL))
);
CREATE INDEX IF NOT EXISTS retrieval_docs_seq ON retrieval_docs (collection, seq);
CREATE INDEX IF NOT EXISTS retrieval_docs_tombstones ON retrieval_docs (collection, updated_at) WHERE deleted;
`

// Options configures a DB.
type Options struct {
	// MaxConns bounds the connection pool (Watch's connections are not
	// in it); 0 is pgx's default, the greater of 4 and the CPU count.
	MaxConns int32
	// TombstoneRetention is how long a deletion's tombstone is kept:
	// older ones are pruned when a collection is opened. 0 is
	// DefaultTombstoneRetention; negative keeps them.
	TombstoneRetention time.Duration
	// Logger receives the watches' connection losses; nil is
	// slog.Default().
	Logger *slog.Logger
}

// DB is a connection pool to the PostgreSQL database of the collections,
// shared by all of a process's collections. Safe for concurrent use.
type DB struct {
	pool   *pgxpool.Pool
	cfg    *pgxpool.Config
	server string // host:port/database, no credentials
	pw     string // the password, to keep it out of errors
	o      Options
	log    *slog.Logger
}

// Connect opens a pool on dsn (a URL or key=value connection string, as
// pgx takes it), checks the connection and creates the schema if needed.
// No error it returns holds the DSN's password.
func Connect(ctx context.Context, dsn string, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parsing the DSN: %w", scrub(err, dsnPassword(dsn)))
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.TombstoneRetention == 0 {
		o.TombstoneRetention = DefaultTombstoneRetention
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = poolApp
	}
	db := &DB{
		cfg:    cfg,
		server: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database),
		pw:     cfg.ConnConfig.Password,
		o:      o,
		log:    o.Logger,
	}
	if db.pw == "" {
		db.pw = dsnPassword(dsn)
	}
	if db.log == nil {
		db.log = slog.Default()
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, db.fail("connecting to "+db.server, err)
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, db.fail("connecting to "+db.server, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return nil, db.fail("creating the schema in "+db.server, err)
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLock)); err != nil {
			return err
		}
		// Without arguments, the simple protocol: several statements.
		_, err := tx.Exec(ctx, schema)
		return err
	})
}

// fail wraps err with what was being done, without the password.
func (db *DB) fail(what string, err error) error {
	return fmt.Errorf("pgstore: %s: %w", what, scrub(err, db.pw))
}

// Close closes the pool; the Stores of db must not be used after it.
// Watches hold their own connections and end with their contexts.
func (db *DB) Close() { db.pool.Close() }

// Server names the database as host:port/database, without credentials.
func (db *DB) Server() string { return db.server }

// Store is one collection in a DB: a retrieve.Store and
// retrieve.ChangeFeed. Safe for concurrent use.
type Store struct {
	db   *DB
	name string
	own  bool // Close closes db
}

var (
	_ retrieve.Store      = (*Store)(nil)
	_ retrieve.ChangeFeed = (*Store)(nil)
)

// Collection returns the store of the collection name (1 to 256 bytes of
// UTF-8 without NUL), registering it in the database if it is new, and
// prunes its tombstones older than the retention.
func (db *DB) Collection(ctx context.Context, name string) (*Store, error) {
	if name == "" || len(name) > maxName || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("pgstore: collection name %q: must be 1 to %d bytes of UTF-8 without NUL", name, maxName)
	}
	if _, err := db.pool.Exec(ctx, "INSERT INTO retrieval_collections (name) VALUES ($1) ON CONFLICT DO NOTHING", name); err != nil {
		return nil, db.fail(fmt.Sprintf("registering collection %q", name), err)
	}
	s := &Store{db: db, name: name}
	if db.o.TombstoneRetention >= 0 {
		if _, err := s.Prune(ctx, db.o.TombstoneRetention); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Open is Connect and Collection for a process with one collection: the
// Store's Close closes the pool.
func Open(ctx context.Context, dsn, collection string, o Options) (*Store, error) {
	db, err := Connect(ctx, dsn, o)
	if err != nil {
		return nil, err
	}
	s, err := db.Collection(ctx, collection)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// Close closes the pool if the Store was made by Open; otherwise it does
// nothing (close the DB).
func (s *Store) Close() {
	if s.own {
		s.db.Close()
	}
}

// Name is the collection's name.
func (s *Store) Name() string { return s.name }

// lockCollection serializes the writers of a collection until commit, so
// that seqs drawn after it increase in commit order.
const lockCollection = `SELECT name FROM retrieval_collections WHERE name = $1 FOR NO KEY UPDATE`

const upsert = `
WITH up AS (
	INSERT INTO retrieval_docs (collection, id, seq, deleted, doc, vectors, updated_at)
	VALUES ($1, $2, nextval('retrieval_seq'), false, $3, $4, now())
	ON CONFLICT (collection, id) DO UPDATE
	SET seq = excluded.seq, deleted = false, doc = excluded.doc, vectors = excluded.vectors, updated_at = now()
	RETURNING seq
)
SELECT seq, pg_notify('` + Channel + `', seq::text || ' ' || $1) FROM up`

const tombstone = `
WITH del AS (
	UPDATE retrieval_docs
	SET seq = nextval('retrieval_seq'), deleted = true, doc = NULL, vectors = NULL, updated_at = now()
	WHERE collection = $1 AND id = $2 AND NOT deleted
	RETURNING seq
)
SELECT seq, pg_notify('` + Channel + `', seq::text || ' ' || $1) FROM del`

// write runs the collection lock then stmt in one implicit transaction
// (a batch: one round trip), scanning stmt's row, if any, with scan.
func (s *Store) write(ctx context.Context, stmt string, scan func(pgx.Row) error, args ...any) error {
	var b pgx.Batch
	b.Queue(lockCollection, s.name)
	b.Queue(stmt, args...)
	res := s.db.pool.SendBatch(ctx, &b)
	var name string
	err := res.QueryRow().Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		res.Close()
		return fmt.Errorf("collection %q is not in %s (dropped?)", s.name, s.db.server)
	}
	if err != nil {
		res.Close()
		return err
	}
	if err = scan(res.QueryRow()); errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if cerr := res.Close(); err == nil {
		err = cerr // the commit's
	}
	return err
}

// scanSeq reads the seq of upsert or tombstone (and pg_notify's void).
func scanSeq(seq *int64) func(pgx.Row) error {
	return func(r pgx.Row) error { return r.Scan(seq, nil) }
}

// Put upserts d and sets d.Seq to the change's number.
func (s *Store) Put(ctx context.Context, d *retrieve.StoredDoc) error {
	js, vecs, err := encodeDoc(d)
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	var seq int64
	if err := s.write(ctx, upsert, scanSeq(&seq), s.name, d.ID, js, vecs); err != nil {
		return s.db.fail(fmt.Sprintf("storing document %q in collection %q", d.ID, s.name), err)
	}
	if seq <= 0 {
		return fmt.Errorf("pgstore: storing document %q in collection %q: no seq returned", d.ID, s.name)
	}
	d.Seq = uint64(seq)
	return nil
}

// Delete replaces the document id by a tombstone and returns its number;
// 0, and no change, when id is not there.
func (s *Store) Delete(ctx context.Context, id string) (uint64, error) {
	var seq int64
	if err := s.write(ctx, tombstone, scanSeq(&seq), s.name, id); err != nil {
		return 0, s.db.fail(fmt.Sprintf("deleting document %q from collection %q", id, s.name), err)
	}
	return uint64(seq), nil
}

// Prune deletes the collection's tombstones older than olderThan (0: all)
// and returns how many. A replica whose cursor is before a pruned
// tombstone reads the whole collection again (retrieve.ErrChangesPruned).
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	const prune = `
WITH gone AS (
	DELETE FROM retrieval_docs
	WHERE collection = $1 AND deleted AND updated_at <= now() - $2::bigint * interval '1 microsecond'
	RETURNING seq
)
UPDATE retrieval_collections
SET pruned_seq = GREATEST(pruned_seq, (SELECT coalesce(max(seq), 0) FROM gone))
WHERE name = $1
RETURNING (SELECT count(*) FROM gone)`
	var n int64
	if err := s.write(ctx, prune, func(r pgx.Row) error { return r.Scan(&n) }, s.name, olderThan.Microseconds()); err != nil {
		return 0, s.db.fail(fmt.Sprintf("pruning the tombstones of collection %q", s.name), err)
	}
	return n, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// page is what one query of Scan or Changes reads.
type page struct {
	pruned  uint64
	changes []retrieve.Change
}

// The pruned seq and the page of changes in one statement, so in one
// snapshot: the page's row, or one row of NULLs when there is none.
const pageQuery = `
SELECT c.pruned_seq, d.seq, d.id, d.doc, d.vectors
FROM retrieval_collections c
LEFT JOIN LATERAL (
	SELECT seq, id, doc, vectors FROM retrieval_docs
	WHERE collection = c.name AND seq > $2 AND ($3 OR NOT deleted)
	ORDER BY seq LIMIT $4
) d ON true
WHERE c.name = $1`

// readPage reads the changes numbered after after, tombstones too if
// tombstones.
func (s *Store) readPage(ctx context.Context, q querier, after uint64, tombstones bool) (page, error) {
	rows, err := q.Query(ctx, pageQuery, s.name, int64(after), tombstones, pageDocs)
	if err != nil {
		return page{}, err
	}
	defer rows.Close()
	var p page
	found := false
	for rows.Next() {
		found = true
		var (
			pruned int64
			seq    *int64
			id     *string
			js     []byte
			vecs   []byte
		)
		if err := rows.Scan(&pruned, &seq, &id, &js, &vecs); err != nil {
			return page{}, err
		}
		p.pruned = uint64(pruned)
		if seq == nil {
			continue
		}
		ch := retrieve.Change{Seq: uint64(*seq), ID: *id}
		if js != nil || vecs != nil {
			d, err := decodeDoc(*id, js, vecs)
			if err != nil {
				return page{}, fmt.Errorf("collection %q, document %q (seq %d): %w", s.name, *id, *seq, err)
			}
			d.Seq = ch.Seq
			ch.Doc = d
		}
		p.changes = append(p.changes, ch)
	}
	if err := rows.Err(); err != nil {
		return page{}, err
	}
	if !found {
		return page{}, fmt.Errorf("collection %q is not in %s (dropped?)", s.name, s.db.server)
	}
	return p, nil
}

// Scan yields the live documents, by increasing seq, from one snapshot
// (a read-only repeatable-read transaction, read a page at a time).
func (s *Store) Scan(ctx context.Context, fn func(*retrieve.StoredDoc) error) error {
	tx, err := s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.db.fail("scanning collection "+s.name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	after := uint64(0)
	for {
		p, err := s.readPage(ctx, tx, after, false)
		if err != nil {
			return s.db.fail("scanning", err)
		}
		for _, ch := range p.changes {
			if err := fn(ch.Doc); err != nil {
				return err
			}
			after = ch.Seq
		}
		if len(p.changes) < pageDocs {
			return nil
		}
	}
}

// Changes implements retrieve.ChangeFeed. Each page is read in its own
// statement (no transaction is held while fn runs); the pruned seq is
// read with each page, so a pruning that happens meanwhile is noticed.
func (s *Store) Changes(ctx context.Context, afterSeq uint64, fn func(retrieve.Change) error) (uint64, error) {
	pos, base := afterSeq, uint64(0)
	for i := 0; ; i++ {
		p, err := s.readPage(ctx, s.db.pool, pos, true)
		if err != nil {
			return pos, s.db.fail("reading changes", err)
		}
		if i == 0 {
			base = p.pruned
		}
		// Tombstones after pos were pruned: before the call (afterSeq
		// older than what was pruned then), or since its first page.
		if (i == 0 && afterSeq > 0 && afterSeq < p.pruned) || (i > 0 && p.pruned > base && pos < p.pruned) {
			return pos, fmt.Errorf("pgstore: collection %q, after seq %d, pruned through %d: %w", s.name, pos, p.pruned, retrieve.ErrChangesPruned)
		}
		for _, ch := range p.changes {
			if err := fn(ch); err != nil {
				return pos, err
			}
			pos = ch.Seq
		}
		if len(p.changes) < pageDocs {
			return max(pos, p.pruned), nil
		}
	}
}
