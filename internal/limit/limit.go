// Package limit enforces rate limits: requests and tokens per minute and
// concurrency, for many named buckets at once, all or none. Local keeps the
// state in process (golang.org/x/time/rate token buckets in a bounded,
// sharded map); Redis shares it across replicas with one atomic server-side
// GCRA script per request.
//
// Semantics, the same in both: a limit of N per minute admits a burst of up
// to Burst (default N) at once and refills continuously, one every 60/N s.
// Tokens are reserved at admission (the prompt estimate plus max_tokens) and
// settled when the response ends: the unused part is refunded, an overrun
// charged.
package limit

import (
	"context"
	"time"
)

// Limit is one bucket's settings. A zero field is unlimited.
type Limit struct {
	RPM          int64 // requests per minute
	RequestBurst int64 // requests at once; 0 means RPM
	TPM          int64 // tokens per minute
	TokenBurst   int64 // tokens at once; 0 means TPM
	Concurrency  int64 // requests in flight
}

// Check is one limit applied to a request. Name identifies the bucket
// ("key:k1", "tenant:acme", "pool:chat", "key:k1|model:gpt-*", ...); the
// state is kept by name, and a new Limit for a known name (a reload) applies
// from the next request.
type Check struct {
	Name  string
	Limit Limit
}

// MaxChecks bounds the checks of one request.
const MaxChecks = 8

// Request is one admission: its checks and the tokens to reserve in each
// token bucket. Admit fills the unexported lease state that Settle uses; a
// Request is reused only after Settle (or a refusal).
type Request struct {
	Checks []Check
	Tokens int64

	lease uint64
	taken uint8
}

// Kind says which limit refused a request.
type Kind uint8

const (
	None        Kind = iota
	Requests         // requests per minute
	Tokens           // tokens per minute
	Concurrency      // requests in flight
	TooLarge         // more tokens than the token burst: never admissible
	Unavailable      // the shared store is unreachable and on_redis_error is closed
)

// Quota is one limit's state for the x-ratelimit-* headers.
type Quota struct {
	Limit     int64         // the per-minute limit
	Remaining int64         // what is left now
	Reset     time.Duration // until the bucket is full again
}

// Result is an admission's outcome.
type Result struct {
	OK   bool
	Kind Kind
	// Denied is the index in Checks of the check that refused.
	Denied int
	// RetryAfter is when the refused request could be admitted.
	RetryAfter time.Duration
	// The tightest request and token limits among the checks (least
	// remaining); Limit is 0 when no check had one.
	Requests, Tokens Quota
}

// Limiter is Local or Redis.
type Limiter interface {
	// Admit takes one request and r.Tokens tokens from every check's
	// buckets and a concurrency slot where a check has one, all or none,
	// and reports the outcome in res. It returns an error only for a
	// context that ended.
	Admit(ctx context.Context, r *Request, res *Result) error
	// Settle ends an admitted request: it charges delta more tokens to
	// its token buckets (negative refunds) and releases its concurrency
	// slots. Exactly once per admitted request.
	Settle(r *Request, delta int64)
	// Stats reports counters for metrics.
	Stats() Stats
	// Close stops background work, flushing pending settlements.
	Close() error
}

// Stats are a limiter's counters since it was made.
type Stats struct {
	Admitted, Refused int64
	// RoundTrips counts calls to the shared store (Redis); 0 for Local.
	RoundTrips int64
	// StoreErrors counts failed calls to the shared store; Fallbacks the
	// admissions decided locally because of them.
	StoreErrors, Fallbacks int64
	// StoreUp is false while the shared store is unreachable.
	StoreUp bool
	// Buckets is the number of buckets kept in process.
	Buckets int
}

// LocalOptions tune Local.
type LocalOptions struct {
	// MaxBuckets bounds the buckets kept (default 100000); when full, idle
	// buckets (full, nothing in flight) are dropped first.
	MaxBuckets int
}

// RedisOptions configure Redis.
type RedisOptions struct {
	// URL is the server, redis://[user:password@]host:port[/db] (or rediss://).
	URL string
	// Closed refuses admissions (Kind Unavailable) while Redis is
	// unreachable; otherwise Fallback (a new Local when nil) decides them.
	Closed   bool
	Fallback *Local
	// Timeout bounds one admission's round trip (default 250ms); a slower
	// answer counts as Redis being unreachable.
	Timeout time.Duration
	// RetryInterval is how often an unreachable Redis is probed and failed
	// settlements are sent again (default 500ms).
	RetryInterval time.Duration
	// LeaseTTL bounds a concurrency slot of a replica that died before
	// releasing it (default 10m).
	LeaseTTL time.Duration
	// Prefix starts every key (default "switchyard:rl:").
	Prefix string
	// OnStateChange, when set, is told when Redis becomes unreachable (err)
	// and reachable again (nil), once per change: the gateway logs it.
	OnStateChange func(err error)
}
