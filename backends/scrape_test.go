package backends

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/backends/sim"
	"switchyard/router"
)

// lockedBuffer collects log lines written from the scrapers' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// results counts scrape results by outcome and keeps the last error.
type results struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	lastErr    error
}

func (r *results) record(res ScrapeResult) {
	if res.Err == nil {
		r.ok.Add(1)
		return
	}
	r.failed.Add(1)
	r.mu.Lock()
	r.lastErr = res.Err
	r.mu.Unlock()
}

func (r *results) last() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

func testUpstream(t *testing.T) *router.Upstream {
	t.Helper()
	r, err := router.New(router.Spec{Upstreams: []router.UpstreamSpec{{Name: "test", MetricsStale: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Upstream("test")
}

// TestScrapeSimulator scrapes a real in-process simulator that is busy: its
// queue, running requests, KV use and cache geometry arrive in the
// upstream's LoadReport.
func TestScrapeSimulator(t *testing.T) {
	o, err := sim.OptionsFromMap(map[string]string{"model": "m", "profile": "fast",
		"max-num-seqs": "1", "itl": "20ms", "kv-blocks": "64", "block-size": "16"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-served })
	url := "http://" + ln.Addr().String()

	u := testUpstream(t)
	c := newClient(t, url, Options{})
	var res results
	sc, err := StartScrapers(slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: MetricsVLLM, Interval: 20 * time.Millisecond, Timeout: time.Second}}, res.record)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	waitUntil(t, "a first scrape", 3*time.Second, func() bool { _, at := u.LoadReport(); return !at.IsZero() })
	l, _ := u.LoadReport()
	if l.Waiting != 0 || l.Running != 0 || l.KVUsage != 0 || l.BlockSize != 16 || l.GPUBlocks != 64 {
		t.Errorf("idle simulator: load %+v; want nothing waiting or running, KV 0, 64 blocks of 16", l)
	}

	// Three long requests on a server that runs one at a time: one runs,
	// two wait, and the running one holds KV blocks.
	var wg sync.WaitGroup
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("word ", 40) + `"}],"max_tokens":40}`
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	waitUntil(t, "the busy simulator's load", 5*time.Second, func() bool {
		l, _ := u.LoadReport()
		return l.Running == 1 && l.Waiting == 2 && l.KVUsage > 0
	})
	wg.Wait()
	waitUntil(t, "the simulator idle again", 5*time.Second, func() bool {
		l, _ := u.LoadReport()
		return l.Running == 0 && l.Waiting == 0
	})
	if res.failed.Load() != 0 {
		t.Errorf("%d failed scrapes of a healthy simulator; last: %v", res.failed.Load(), res.last())
	}
}

// TestScrapeFailures: a metrics page that returns garbage, answers too
// slowly, answers 500 or whose server is down records no load (the last one
// ages); each is a failed result, the switch to failing is logged once with
// the backend and the error, the recovery once, and the API key, sent as a
// bearer token, is never logged.
var hugePage = strings.Repeat("# padding\n", MaxMetricsPage/10+10)

func TestScrapeFailures(t *testing.T) {
	var mode atomic.Value
	mode.Store("ok")
	var auth atomic.Value
	auth.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		switch mode.Load().(string) {
		case "ok":
			fmt.Fprint(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 7\nvllm:num_requests_running{model_name=\"m\"} 3\n")
		case "garbage":
			fmt.Fprint(w, "<html><body>upstream connect error</body></html>\n")
		case "slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "huge":
			// With its length announced, as metrics servers send pages, so
			// that the refusal does not depend on how fast a 4 MiB body is
			// read under -race on a busy machine.
			w.Header().Set("Content-Length", strconv.Itoa(len(hugePage)))
			_, _ = io.WriteString(w, hugePage)
		}
	}))
	defer srv.Close()

	u := testUpstream(t)
	const key = "sk-secret-scrape-key"
	c := newClient(t, srv.URL, Options{APIKey: key})
	var log lockedBuffer
	var res results
	sc, err := StartScrapers(slog.New(slog.NewTextHandler(&log, nil)),
		[]Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: MetricsVLLM, Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond}}, res.record)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	waitUntil(t, "a good scrape", 3*time.Second, func() bool { l, _ := u.LoadReport(); return l.Waiting == 7 })
	if got := auth.Load().(string); got != "Bearer "+key {
		t.Errorf("Authorization sent: %q; want the backend's API key as a bearer token", got)
	}

	for _, c := range []struct{ mode, inErr string }{
		{"garbage", "line 1"},
		{"slow", "no answer within 100ms"},
		{"500", "status 500"},
		{"huge", "larger than"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			mode.Store(c.mode)
			failed := res.failed.Load()
			waitUntil(t, "two failed scrapes", 5*time.Second, func() bool { return res.failed.Load() >= failed+2 })
			_, at := u.LoadReport()
			failed = res.failed.Load()
			waitUntil(t, "two more failed scrapes", 5*time.Second, func() bool { return res.failed.Load() >= failed+2 })
			if _, at2 := u.LoadReport(); !at2.Equal(at) {
				t.Errorf("a failing scrape recorded a load (at %v, then %v)", at, at2)
			}
			if err := res.last(); err == nil || !strings.Contains(err.Error(), c.inErr) {
				t.Errorf("the failed scrape's error: %v; want it to mention %q", err, c.inErr)
			}
			if n := strings.Count(log.String(), "backend metrics scrape failed"); n != 1 {
				t.Errorf("%d failure log lines; want 1, on the switch to failing:\n%s", n, log.String())
			}
			mode.Store("ok")
			waitUntil(t, "the recovery", 3*time.Second, func() bool { _, at2 := u.LoadReport(); return at2.After(at) })
			waitUntil(t, "the recovery log line", time.Second, func() bool {
				return strings.Count(log.String(), "backend metrics scraped again") >= 1
			})
			// Start the next case from one failure line.
			logged := log.String()
			if !strings.Contains(logged, "backend=test") || !strings.Contains(logged, "error=") {
				t.Errorf("the failure line lacks the backend or the error:\n%s", logged)
			}
			log.mu.Lock()
			log.b.Reset()
			log.mu.Unlock()
		})
	}

	// Down: nothing listens at the address any more.
	srv.Close()
	failed := res.failed.Load()
	waitUntil(t, "failed scrapes of a server that is down", 5*time.Second, func() bool { return res.failed.Load() >= failed+2 })
	if !strings.Contains(log.String(), "backend metrics scrape failed") {
		t.Errorf("no log line for a server that is down:\n%s", log.String())
	}
	if strings.Contains(log.String(), key) {
		t.Errorf("the API key is in the log:\n%s", log.String())
	}
	if err := res.last(); err != nil && strings.Contains(err.Error(), key) {
		t.Errorf("the API key is in an error: %v", err)
	}
}

// TestScrapersClose: with a scrape in flight on a slow server, Close
// returns at once, and leaves no goroutine behind.
func TestScrapersClose(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	base := runtime.NumGoroutine()
	u := testUpstream(t)
	c := newClient(t, srv.URL, Options{})
	sc, err := StartScrapers(slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: MetricsTGI, Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select { // a scrape is in flight
	case <-entered:
	case <-time.After(3 * time.Second):
		t.Fatal("no scrape reached the server")
	}
	start := time.Now()
	sc.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	waitUntil(t, "the scraper's goroutines to end", 3*time.Second, func() bool { return runtime.NumGoroutine() <= base+2 })
	var nilScrapers *Scrapers
	nilScrapers.Close()
}

func TestStartScrapersErrors(t *testing.T) {
	u := testUpstream(t)
	c := newClient(t, "http://127.0.0.1:1", Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := StartScrapers(log, []Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: "ollama", Interval: time.Second, Timeout: time.Second}}, nil); err == nil || !strings.Contains(err.Error(), "vllm") {
		t.Errorf("an unknown kind: %v; want an error listing the kinds", err)
	}
	if _, err := StartScrapers(log, []Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: MetricsVLLM}}, nil); err == nil {
		t.Error("a zero interval: no error")
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(100 * time.Millisecond); d < 90*time.Millisecond || d > 110*time.Millisecond {
			t.Fatalf("jitter(100ms) = %v; want within ±10%%", d)
		}
	}
}

// TestScrapeReconnects: a server that closes each kept-alive connection
// after one answer (without saying so) costs no failed scrape: the scraper
// retries once on a new connection.
func TestScrapeReconnects(t *testing.T) {
	page := "tgi_queue_size 2\ntgi_batch_current_size 5\n"
	url, conns := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if readRequest(br) == nil {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(page), page)
		}
	})
	u := testUpstream(t)
	c := newClient(t, url, Options{})
	var res results
	sc, err := StartScrapers(slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]Scrape{{Client: c, Upstream: u, Path: "/metrics", Kind: MetricsTGI, Interval: 10 * time.Millisecond, Timeout: time.Second}}, res.record)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "five good scrapes", 3*time.Second, func() bool { return res.ok.Load() >= 5 })
	sc.Close()
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d failed scrapes (last: %v); want 0", n, res.last())
	}
	if l, _ := u.LoadReport(); l.Waiting != 2 || l.Running != 5 || l.KVUsage != -1 {
		t.Errorf("load %+v", l)
	}
	if conns.Load() < 5 {
		t.Errorf("%d connections for %d scrapes; the server closes each", conns.Load(), res.ok.Load())
	}
}
