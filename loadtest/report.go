package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the outcome of a run. Latencies are in milliseconds. It
// marshals to JSON with encoding/json.
type Report struct {
	Mode        string  `json:"mode"`
	Scenario    string  `json:"scenario"`
	URL         string  `json:"url"`
	Rate        float64 `json:"rate,omitempty"`        // open loop: target arrivals per second
	Concurrency int     `json:"concurrency,omitempty"` // closed loop: users
	// ElapsedSeconds runs from the start of the measured phase to the end of
	// its last request.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// WindowSeconds is the measurement window for rates: the measured phase
	// (Duration) for duration-bound runs, capped at ElapsedSeconds; the whole
	// elapsed time for runs bounded by request count only.
	WindowSeconds float64 `json:"window_seconds"`
	// SendRate is measured requests (dropped included) per second of the
	// sending window.
	SendRate float64 `json:"send_rate"`
	// Throughput is successes completed within the window per window second.
	// Requests still running when the window closes are not counted, so an
	// overloaded target shows a throughput below the send rate even if it
	// answers everything eventually.
	Throughput float64 `json:"throughput"`

	Stats
	// Scenarios breaks the numbers down by request kind (mix runs and
	// single-kind runs alike).
	Scenarios map[string]*Stats `json:"scenarios"`
}

// Stats are the counts and latency summaries of a set of requests.
type Stats struct {
	Requests  int64 `json:"requests"` // measured requests, dropped included
	Successes int64 `json:"successes"`
	Failures  int64 `json:"failures"`
	// Status counts responses by HTTP status code.
	Status map[string]int64 `json:"status"`
	// Errors counts failures by reason: "http_<status>" or one of the Err*
	// constants.
	Errors map[string]int64 `json:"errors"`
	// Cache counts the values of the x-switchyard-cache response header.
	Cache map[string]int64 `json:"cache,omitempty"`
	// Latency of successful requests: from the intended send time (open
	// loop) or the actual send time (closed loop) to the end of the answer.
	Latency Summary `json:"latency_ms"`
	// TTFT is time to first token chunk of successful streams, measured from
	// the same start as Latency.
	TTFT *Summary `json:"ttft_ms,omitempty"`
	// ITL is the time between consecutive token chunks of successful streams.
	ITL    *Summary `json:"itl_ms,omitempty"`
	Tokens Tokens   `json:"tokens"`
}

// Summary summarizes a latency distribution, in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Tokens sums usage reported by the server for successful requests.
type Tokens struct {
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
	// Cached is the prompt tokens the server reported as served from its
	// prefix cache (usage.prompt_tokens_details.cached_tokens).
	Cached int64 `json:"cached,omitempty"`
	// CachedShare is Cached over Prompt: the prefix cache's token hit rate
	// as the servers saw it (0 without usage details).
	CachedShare float64 `json:"cached_share,omitempty"`
	// MissingUsage counts successful requests whose answer had no usage.
	MissingUsage int64 `json:"missing_usage,omitempty"`
	// OutputPerSecond is completion tokens of requests completed within the
	// window, per window second.
	OutputPerSecond float64 `json:"output_per_second"`
	// TotalPerSecond is prompt plus completion tokens likewise.
	TotalPerSecond float64 `json:"total_per_second"`
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// merged holds the histograms of several kindStats summed.
type merged struct {
	lat, ttft, itl *hdrhistogram.Histogram
}

// buildStats turns accumulated kindStats into Stats. window is used for the
// token rates; okInWindow returns the successes completed within it.
func buildStats(parts []*kindStats, window time.Duration) (st Stats, okInWindow int64) {
	st = Stats{Status: map[string]int64{}, Errors: map[string]int64{}}
	var inWin Usage
	m := merged{newHist(), newHist(), newHist()}
	for _, p := range parts {
		p.mu.Lock()
		st.Requests += p.requests
		st.Successes += p.ok
		for code, n := range p.status {
			st.Status[strconv.Itoa(code)] += n
		}
		for reason, n := range p.errors {
			st.Errors[reason] += n
		}
		for v, n := range p.cache {
			if st.Cache == nil {
				st.Cache = map[string]int64{}
			}
			st.Cache[v] += n
		}
		st.Tokens.Prompt += p.usage.PromptTokens
		st.Tokens.Completion += p.usage.CompletionTokens
		st.Tokens.Cached += p.usage.CachedTokens
		st.Tokens.MissingUsage += p.missingUsage
		okInWindow += p.okInWindow
		inWin.PromptTokens += p.usageInWindow.PromptTokens
		inWin.CompletionTokens += p.usageInWindow.CompletionTokens
		m.lat.Merge(p.lat)
		m.ttft.Merge(p.ttft)
		m.itl.Merge(p.itl)
		p.mu.Unlock()
	}
	st.Failures = st.Requests - st.Successes
	if st.Tokens.Prompt > 0 {
		st.Tokens.CachedShare = float64(st.Tokens.Cached) / float64(st.Tokens.Prompt)
	}
	st.Latency = summarize(m.lat)
	if m.ttft.TotalCount() > 0 {
		s := summarize(m.ttft)
		st.TTFT = &s
	}
	if m.itl.TotalCount() > 0 {
		s := summarize(m.itl)
		st.ITL = &s
	}
	if secs := window.Seconds(); secs > 0 {
		st.Tokens.OutputPerSecond = float64(inWin.CompletionTokens) / secs
		st.Tokens.TotalPerSecond = float64(inWin.PromptTokens+inWin.CompletionTokens) / secs
	}
	return st, okInWindow
}

// WriteTable writes r as a human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	switch r.Mode {
	case ModeOpen:
		p("mode\topen loop, %g req/s\n", r.Rate)
	default:
		p("mode\tclosed loop, %d users\n", r.Concurrency)
	}
	p("target\t%s (%s)\n", r.URL, r.Scenario)
	p("elapsed\t%.2fs (window %.2fs)\n", r.ElapsedSeconds, r.WindowSeconds)
	p("requests\t%d (%d ok, %d failed)\n", r.Requests, r.Successes, r.Failures)
	p("send rate\t%.1f req/s\n", r.SendRate)
	p("throughput\t%.1f ok/s\n", r.Throughput)
	p("tokens\t%d prompt, %d completion; %.1f output tok/s, %.1f total tok/s\n",
		r.Tokens.Prompt, r.Tokens.Completion, r.Tokens.OutputPerSecond, r.Tokens.TotalPerSecond)
	if r.Tokens.Cached > 0 {
		p("cached prompt\t%d tokens (%.1f%% of prompt tokens, from the servers' usage)\n", r.Tokens.Cached, r.Tokens.CachedShare*100)
	}
	if r.Tokens.MissingUsage > 0 {
		p("missing usage\t%d ok responses had no usage\n", r.Tokens.MissingUsage)
	}
	if len(r.Status) > 0 {
		p("status\t%s\n", formatCounts(r.Status))
	}
	if len(r.Errors) > 0 {
		p("errors\t%s\n", formatCounts(r.Errors))
	}
	if len(r.Cache) > 0 {
		p("cache\t%s\n", formatCounts(r.Cache))
	}
	if r.Latency.Count == 0 {
		return tw.Flush()
	}
	p("\n")
	p("ms\tcount\tmin\tmean\tp50\tp90\tp99\tp99.9\tmax\n")
	row := func(name string, s *Summary) {
		if s == nil || s.Count == 0 {
			return
		}
		p("%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", name, s.Count, s.Min, s.Mean, s.P50, s.P90, s.P99, s.P999, s.Max)
	}
	row("latency", &r.Latency)
	row("ttft", r.TTFT)
	row("itl", r.ITL)
	if len(r.Scenarios) > 1 {
		for _, name := range slices.Sorted(maps.Keys(r.Scenarios)) {
			s := r.Scenarios[name]
			row(name+" latency", &s.Latency)
			row(name+" ttft", s.TTFT)
		}
		p("\n")
		for _, name := range slices.Sorted(maps.Keys(r.Scenarios)) {
			s := r.Scenarios[name]
			p("%s\t%d requests, %d ok, %d failed\t%s\n", name, s.Requests, s.Successes, s.Failures, formatCounts(s.Errors))
		}
	}
	return tw.Flush()
}

func formatCounts(m map[string]int64) string {
	out := ""
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			out += " "
		}
		out += k + "=" + strconv.FormatInt(m[k], 10)
	}
	return out
}
