// Package store is Switchyard's durable store: one schema with versioned
// migrations, on SQLite (modernc.org/sqlite, pure Go) by default, in a file
// under the config's data_dir, or on PostgreSQL (jackc/pgx/v5) when a DSN is
// set. Keys made through the admin API and spend per key and tenant live
// here; later capabilities (review items, audit, batches) add their tables
// as new migrations.
//
// Both engines implement Store and run the same tests.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns (wrapped with what failed).
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrRevoked  = errors.New("revoked")
)

// Options choose and tune the engine.
type Options struct {
	// DataDir holds the SQLite file (switchyard.db); created if missing.
	DataDir string
	// PostgresDSN, when set, selects PostgreSQL (a pgx connection string or URL).
	PostgresDSN string
}

// Key is an API key made through the admin API. The plaintext is never
// stored: only its SHA-256.
type Key struct {
	ID     string
	Tenant string
	Hash   [32]byte
	// Prefix is a non-secret hint shown in listings ("sk-sy-AbC1").
	Prefix string
	// Spec is the key's settings as JSON (allowed models, priority, limits,
	// budget, metadata); the gateway defines and validates it, the store
	// keeps it as given.
	Spec      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	// RevokedAt is zero while the key is active.
	RevokedAt time.Time
	// Version orders changes: every create, revoke and rotate gives the key
	// a version greater than any before it, store-wide.
	Version int64
}

// SpendDelta is spend to add to one scope's total for one period.
type SpendDelta struct {
	Scope  string // "key" or "tenant"
	ID     string
	Period string    // "day" or "month"
	Start  time.Time // the period's start, UTC
	// NanoUSD is the cost in billionths of a US dollar.
	NanoUSD      int64
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// SpendRow is one scope's total for one period (the same fields, summed).
type SpendRow = SpendDelta

// SpendFilter selects spend rows; empty fields match all.
type SpendFilter struct {
	Scope, ID, Period string
	// Since keeps rows whose period starts at or after it (zero: all).
	Since time.Time
}

// Store is the durable store. Its methods are safe for concurrent use.
type Store interface {
	// Kind is "sqlite" or "postgres".
	Kind() string

	// CreateKey stores a new key; ErrExists when its id or hash is taken.
	CreateKey(ctx context.Context, k Key) (Key, error)
	// GetKey returns the key with this id, revoked or not; ErrNotFound.
	GetKey(ctx context.Context, id string) (Key, error)
	// ListKeys returns every key, revoked ones included, by id.
	ListKeys(ctx context.Context) ([]Key, error)
	// RevokeKey marks the key revoked at at; ErrNotFound, or ErrRevoked
	// when it already was.
	RevokeKey(ctx context.Context, id string, at time.Time) (Key, error)
	// RotateKey replaces the key's hash and prefix (the old plaintext stops
	// working); ErrNotFound, ErrRevoked, or ErrExists for a taken hash.
	RotateKey(ctx context.Context, id string, hash [32]byte, prefix string, at time.Time) (Key, error)
	// KeysSince returns the keys changed after version, by version.
	KeysSince(ctx context.Context, version int64) ([]Key, error)

	// AddSpend adds the deltas (in one transaction) and returns the totals
	// of their rows after the addition, in the deltas' order.
	AddSpend(ctx context.Context, deltas []SpendDelta) ([]SpendRow, error)
	// ListSpend returns the rows the filter selects.
	ListSpend(ctx context.Context, f SpendFilter) ([]SpendRow, error)

	// Close closes the store.
	Close() error
}
