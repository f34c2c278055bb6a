package router

import (
	"math"
	"sync/atomic"
	"time"
)

// Load is a backend's load as its metrics endpoint last reported it (vLLM's
// vllm:num_requests_waiting, vllm:num_requests_running,
// vllm:kv_cache_usage_perc and vllm:cache_config_info, or another server's
// equivalents). A scraper fills it and calls Upstream.SetLoad.
type Load struct {
	Waiting float64 // requests queued, not yet running
	Running float64 // requests running
	// KVUsage is the fraction of the KV cache in use, 0..1; negative when
	// the server does not report it.
	KVUsage float64
	// BlockSize and GPUBlocks are the KV cache's geometry (tokens per block,
	// number of blocks), 0 when not reported; they size the prefix index.
	BlockSize int
	GPUBlocks int
}

// loadState is the load part of an UpstreamState: the last scrape, and what
// the gateway itself observes (tokens in flight, time to first token).
type loadState struct {
	waiting    atomic.Uint64 // float64 bits
	running    atomic.Uint64 // float64 bits
	kv         atomic.Uint64 // float64 bits; negative = unknown
	blockSize  atomic.Int64
	gpuBlocks  atomic.Int64
	at         atomic.Int64 // unix nanoseconds of the last good scrape; 0 = never
	inflightAt atomic.Int64 // the gateway's in-flight count at that scrape

	tokens atomic.Int64  // estimated prompt tokens of the requests in flight
	ttft   atomic.Uint64 // float64 bits of the EWMA of the time to first byte, in ns; 0 = none yet
	ttftN  atomic.Int64  // samples in ttft since it was last reset

	prefix atomic.Pointer[prefixIndex] // block hashes sent here (prefix.go); nil until a prefix-aware pool picks it
}

// SetLoad records a scrape of the backend's metrics, taken at at. It is
// safe for concurrent use; the fields are stored one by one, so a reader
// may see a mix of two scrapes, which scoring tolerates.
func (u *Upstream) SetLoad(l Load, at time.Time) {
	s := &u.st.load
	s.waiting.Store(math.Float64bits(l.Waiting))
	s.running.Store(math.Float64bits(l.Running))
	s.kv.Store(math.Float64bits(l.KVUsage))
	s.blockSize.Store(int64(l.BlockSize))
	s.gpuBlocks.Store(int64(l.GPUBlocks))
	s.inflightAt.Store(u.st.inflight.Load())
	s.at.Store(at.UnixNano())
}

// LoadReport returns the last recorded load and when it was scraped (the
// zero time when never).
func (u *Upstream) LoadReport() (Load, time.Time) {
	s := &u.st.load
	l := Load{
		Waiting:   math.Float64frombits(s.waiting.Load()),
		Running:   math.Float64frombits(s.running.Load()),
		KVUsage:   math.Float64frombits(s.kv.Load()),
		BlockSize: int(s.blockSize.Load()),
		GPUBlocks: int(s.gpuBlocks.Load()),
	}
	at := s.at.Load()
	if at == 0 {
		return l, time.Time{}
	}
	return l, time.Unix(0, at)
}

// AddTokens adds n (negative to take away) to the estimated prompt tokens
// in flight on the upstream. The gateway adds a request's estimate when an
// attempt starts and takes it away when it ends.
func (u *Upstream) AddTokens(n int) {
	if n != 0 {
		u.st.load.tokens.Add(int64(n))
	}
}

// ttftAlpha is the weight of a new sample in the time-to-first-byte EWMA.
const ttftAlpha = 0.2

// ObserveTTFT folds one attempt's time to first byte into the upstream's
// moving average. Lost updates under contention only drop a sample.
func (u *Upstream) ObserveTTFT(d time.Duration) {
	s := &u.st.load
	old := s.ttft.Load()
	v := float64(d)
	if old != 0 {
		o := math.Float64frombits(old)
		v = o + ttftAlpha*(v-o)
	}
	if v <= 0 {
		v = 1 // 0 means "no sample yet"
	}
	if s.ttft.CompareAndSwap(old, math.Float64bits(v)) {
		s.ttftN.Add(1)
	}
}

// ttftSamples is the number of samples in the TTFT average.
func (u *Upstream) ttftSamples() int64 { return u.st.load.ttftN.Load() }

// resetTTFT forgets the TTFT average (a latency ejection: the upstream's
// return is judged on new samples).
func (u *Upstream) resetTTFT() {
	u.st.load.ttft.Store(0)
	u.st.load.ttftN.Store(0)
}

// TTFT returns the moving average of the time to first byte; 0 before the
// first sample.
func (u *Upstream) TTFT() time.Duration {
	return time.Duration(math.Float64frombits(u.st.load.ttft.Load()))
}
