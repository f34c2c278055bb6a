package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds, in microseconds: 1 us to 10 min, 3 significant digits.
const (
	histMin   = 1
	histMax   = int64(10 * time.Minute / time.Microsecond)
	histDigit = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigit) }

func recordDur(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us) // in range by construction
}

// Error reasons, the keys of Report.Errors besides "http_<status>".
const (
	ErrDropped         = "dropped"          // not sent: the in-flight bound was reached
	ErrTimeout         = "timeout"          // no complete answer within Config.Timeout
	ErrConnect         = "connect"          // could not connect
	ErrNetwork         = "network"          // connection failed mid-request
	ErrStreamError     = "stream_error"     // the stream carried an error event
	ErrStreamTruncated = "stream_truncated" // the stream ended without [DONE]
	ErrCanceled        = "canceled"         // the run was canceled before the answer came
)

// maxCacheValues bounds the distinct x-switchyard-cache values counted; the
// rest count as "other".
const maxCacheValues = 16

// outcome is what one request produced.
type outcome struct {
	status   int
	err      string // "" on success
	latency  time.Duration
	ttft     time.Duration // streams: intended send to first token chunk; 0 if none
	itl      []time.Duration
	usage    Usage
	hasUsage bool
	cache    []byte // x-switchyard-cache header, borrowed
}

// kindStats accumulates the outcomes of one request kind. Latency
// histograms hold successful requests only.
type kindStats struct {
	mu           sync.Mutex
	lat          *hdrhistogram.Histogram
	ttft         *hdrhistogram.Histogram
	itl          *hdrhistogram.Histogram
	requests     int64
	ok           int64
	status       map[int]int64
	errors       map[string]int64
	cache        map[string]int64
	usage        Usage
	missingUsage int64
	// Successes and their usage completed within the sending window.
	okInWindow    int64
	usageInWindow Usage
}

func newKindStats() *kindStats {
	return &kindStats{
		lat:    newHist(),
		ttft:   newHist(),
		itl:    newHist(),
		status: make(map[int]int64),
		errors: make(map[string]int64),
		cache:  make(map[string]int64),
	}
}

// record adds one outcome. windowEnd is the end of the sending window
// (zero: none); it decides whether a success counts toward throughput.
func (s *kindStats) record(o *outcome, windowEnd time.Time) {
	inWindow := windowEnd.IsZero() || !time.Now().After(windowEnd)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if o.status != 0 {
		s.status[o.status]++
	}
	if len(o.cache) > 0 {
		if _, ok := s.cache[string(o.cache)]; ok || len(s.cache) < maxCacheValues {
			s.cache[string(o.cache)]++
		} else {
			s.cache["other"]++
		}
	}
	if o.err != "" {
		s.errors[o.err]++
		return
	}
	s.ok++
	recordDur(s.lat, o.latency)
	if o.ttft > 0 {
		recordDur(s.ttft, o.ttft)
	}
	for _, d := range o.itl {
		recordDur(s.itl, d)
	}
	if inWindow {
		s.okInWindow++
	}
	if o.hasUsage {
		s.usage.PromptTokens += o.usage.PromptTokens
		s.usage.CompletionTokens += o.usage.CompletionTokens
		s.usage.CachedTokens += o.usage.CachedTokens
		if inWindow {
			s.usageInWindow.PromptTokens += o.usage.PromptTokens
			s.usageInWindow.CompletionTokens += o.usage.CompletionTokens
		}
	} else {
		s.missingUsage++
	}
}

// recordDropped counts a request that was due but not sent.
func (s *kindStats) recordDropped() {
	s.mu.Lock()
	s.requests++
	s.errors[ErrDropped]++
	s.mu.Unlock()
}
