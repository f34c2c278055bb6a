package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/respool"
	"switchyard/plugins"
)

// heldRes stands for a limiter, cache or client a stage keeps across
// reloads: it counts the requests it saw and its Close calls.
type heldRes struct {
	setting string
	hits    atomic.Int64
	closed  atomic.Int32
}

func (r *heldRes) Close() error { r.closed.Add(1); return nil }

// resStage is the test_resource stage: it asks the pool for a heldRes keyed
// by its settings, counts requests in it and in a metric, and records what
// each provisioning got, under its name.
type resStage struct {
	resSettings `yaml:",inline"`
	res         *heldRes
	hits        *metrics.Counter
}

type resSettings struct {
	Name    string `yaml:"name" json:"name"`
	Setting string `yaml:"setting" json:"setting"`
	Metric  string `yaml:"metric" json:"-"` // the hits counter's name, when not the default
}

// provisioned is what one provisioning of a test_resource stage got.
type provisioned struct {
	res *heldRes
	ctx context.Context
}

var (
	resMu      sync.Mutex
	resRecords = map[string][]provisioned{} // by stage name
	resMade    = map[string]int{}           // constructions, by stage name
)

func records(name string) []provisioned {
	resMu.Lock()
	defer resMu.Unlock()
	return append([]provisioned(nil), resRecords[name]...)
}

// forget drops the records of the named stages (for -count > 1).
func forget(names ...string) {
	resMu.Lock()
	defer resMu.Unlock()
	for _, n := range names {
		delete(resRecords, n)
		delete(resMade, n)
	}
}

func made(name string) int {
	resMu.Lock()
	defer resMu.Unlock()
	return resMade[name]
}

func (s *resStage) Provision(env *gateway.Env) error {
	key, err := respool.Key("test_resource", s.resSettings)
	if err != nil {
		return err
	}
	r, err := gateway.Resource(env, key, func() (*heldRes, error) {
		if s.Setting == "fail" {
			return nil, fmt.Errorf("cannot connect")
		}
		resMu.Lock()
		resMade[s.Name]++
		resMu.Unlock()
		return &heldRes{setting: s.Setting}, nil
	})
	if err != nil {
		return err
	}
	s.res = r
	name := `switchyard_test_resource_hits_total{name="` + s.Name + `"}`
	if s.Metric != "" {
		name = s.Metric
	}
	s.hits = env.Metrics.Counter(name, "Requests seen by test_resource stages.")
	resMu.Lock()
	resRecords[s.Name] = append(resRecords[s.Name], provisioned{res: r, ctx: env.Context()})
	resMu.Unlock()
	return nil
}

func (s *resStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	s.res.hits.Add(1)
	s.hits.Inc()
	return next.Handle(x)
}

func resRegistry() *gateway.Registry {
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	reg.Register(gateway.Factory{Kind: "test_resource", New: func() gateway.Stage { return &resStage{} }})
	reg.Register(gateway.Factory{Kind: "test_failing", New: func() gateway.Stage { return &failingStage{} }})
	return reg
}

func resConfig(t *testing.T, chain string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`backends: [{name: a, url: "http://127.0.0.1:9"}]
models: [{name: m, targets: [{backend: a}]}]
routes:
`+chain), "res.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func buildRes(t *testing.T, pool *respool.Pool, chain string) (*gateway.Generation, error) {
	t.Helper()
	return gateway.Build(resConfig(t, chain), gateway.BuildOptions{Registry: resRegistry(), Resources: pool,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func isDone(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// TestResourceSurvivesReloads: 20 generations whose stage settings do not
// change share one instance, never closed while one of them runs; each
// retired generation's context is cancelled; a changed setting gets a new
// instance and the old one is closed after the old generation closes.
func TestResourceSurvivesReloads(t *testing.T) {
	forget("reloads")
	pool := respool.New()
	const same = "  - name: r\n    chain: [test_resource: {name: reloads, setting: a}]\n"
	var old *gateway.Generation
	for i := 0; i < 20; i++ {
		g, err := buildRes(t, pool, same)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		if old != nil {
			old.Close()
		}
		old = g
		recs := records("reloads")
		if len(recs) != i+1 {
			t.Fatalf("build %d: %d provisionings recorded", i, len(recs))
		}
		for j, p := range recs {
			if p.res != recs[0].res {
				t.Fatalf("build %d: generation %d got instance %p, the first got %p", i, j, p.res, recs[0].res)
			}
			if cancelled, retired := isDone(p.ctx), j < i; cancelled != retired {
				t.Fatalf("build %d: context of generation %d cancelled = %v, want %v", i, j, cancelled, retired)
			}
		}
		if n := recs[0].res.closed.Load(); n != 0 {
			t.Fatalf("build %d: the shared instance was closed %d times", i, n)
		}
	}
	if n := made("reloads"); n != 1 {
		t.Fatalf("constructed %d times in 20 generations, want 1", n)
	}
	first := records("reloads")[0].res

	g, err := buildRes(t, pool, "  - name: r\n    chain: [test_resource: {name: reloads, setting: b}]\n")
	if err != nil {
		t.Fatal(err)
	}
	recs := records("reloads")
	changed := recs[len(recs)-1].res
	if changed == first || changed.setting != "b" {
		t.Fatalf("a changed setting got %p (setting %q), the old instance is %p", changed, changed.setting, first)
	}
	if first.closed.Load() != 0 {
		t.Fatal("the old instance was closed while its generation still serves")
	}
	old.Close()
	if n := first.closed.Load(); n != 1 {
		t.Fatalf("old instance closed %d times after its last generation closed, want 1", n)
	}
	g.Close()
	if n := changed.closed.Load(); n != 1 || pool.Len() != 0 {
		t.Fatalf("after the last generation: closed %d times, %d values left in the pool", n, pool.Len())
	}
}

// TestFailedBuildReleasesItsResources: a build that fails at a later stage
// gives back what its earlier stages took; the serving generation's
// resources stay.
func TestFailedBuildReleasesItsResources(t *testing.T) {
	forget("failed-shared", "failed-own", "failed-error")
	pool := respool.New()
	serving, err := buildRes(t, pool, "  - name: r\n    chain: [test_resource: {name: failed-shared, setting: a}]\n")
	if err != nil {
		t.Fatal(err)
	}
	defer serving.Close()
	_, err = buildRes(t, pool, `  - name: r
    chain:
      - test_resource: {name: failed-shared, setting: a}
      - test_resource: {name: failed-own, setting: a}
      - test_failing: {fail: provision}
      - test_resource: {name: failed-error, setting: fail}
`)
	if err == nil || !strings.Contains(err.Error(), "provision says no") || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("build error = %v, want both stages' errors", err)
	}
	shared, own := records("failed-shared"), records("failed-own")
	if len(shared) != 2 || shared[0].res != shared[1].res || shared[0].res.closed.Load() != 0 {
		t.Fatal("the serving generation's resource was not shared, or was closed by the failed build")
	}
	if len(own) != 1 || own[0].res.closed.Load() != 1 || !isDone(own[0].ctx) {
		t.Fatal("the failed build's own resource was not closed, or its context not cancelled")
	}
	// The serving generation's stage resource, its backend's live state,
	// the router's ejection lock and the rate limiter.
	if pool.Len() != 4 {
		t.Fatalf("pool holds %d values, want the serving generation's 4", pool.Len())
	}
}

// TestStageMetricsErrors: a metric a stage may not register is its
// provisioning error, with the stage's YAML location.
func TestStageMetricsErrors(t *testing.T) {
	f := func(metric, want string) {
		t.Helper()
		g, err := buildRes(t, respool.New(), "  - name: r\n    chain: [test_resource: {name: metrics, setting: a, metric: '"+metric+"'}]\n")
		if err == nil {
			g.Close()
			t.Fatalf("metric %q was accepted", metric)
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "res.yaml:5:") {
			t.Fatalf("metric %q: error %q, want it to contain %q", metric, err, want)
		}
	}
	f("not a name", "provisioning test_resource: metric \"not a name\"")
	f("switchyard_requests_total", "is a gateway family")
}

// TestEnvNotMadeByBuild: an Env built by hand (a stage's unit test) still
// works: resources are not shared, metrics not exported, the context never
// ends.
func TestEnvNotMadeByBuild(t *testing.T) {
	env := &gateway.Env{}
	env.Metrics.Counter("not a name", "").Inc()
	env.Metrics.Histogram("h", "", nil).Update(1)
	r, err := gateway.Resource(env, "k", func() (*heldRes, error) { return &heldRes{}, nil })
	if err != nil || r == nil {
		t.Fatal(r, err)
	}
	if env.Context() == nil || env.Metrics.Err() != nil {
		t.Fatal("want a context and no metrics error")
	}
}

// TestResourcesThroughServerReloads runs the real path: a server reloading
// its config file keeps the stage's resource while its settings are
// unchanged, its metric keeps counting, and a changed setting replaces it,
// the old one closed once the old generation retires.
func TestResourcesThroughServerReloads(t *testing.T) {
	cfg := func(setting string, n int) string {
		return simConfig(fmt.Sprintf(`routes:
  - name: chat
    chain: [test_resource: {name: server, setting: %s}]
# reload %d
`, setting, n))
	}
	forget("server")
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg("a", 0))
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: resRegistry(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	url := "http://" + ln.Addr().String()
	chat := func() {
		t.Helper()
		if code, _, body := post(t, url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`); code != 200 {
			t.Fatalf("chat: %d %s", code, body)
		}
	}
	chat()
	const reloads = 10
	for i := 1; i <= reloads; i++ {
		write(cfg("a", i))
		if err := srv.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		chat()
	}
	recs := records("server")
	if len(recs) != reloads+1 || made("server") != 1 {
		t.Fatalf("%d provisionings, %d constructions; want %d, 1", len(recs), made("server"), reloads+1)
	}
	first := recs[0].res
	if n := first.hits.Load(); n != reloads+1 {
		t.Fatalf("the kept instance saw %d requests, want %d", n, reloads+1)
	}
	waitFor(t, "the retired generations' contexts to be cancelled", 5*time.Second, func() bool {
		for _, p := range recs[:reloads] {
			if !isDone(p.ctx) {
				return false
			}
		}
		return true
	})
	if isDone(recs[reloads].ctx) || first.closed.Load() != 0 {
		t.Fatal("the serving generation's context is cancelled, or its resource closed")
	}
	_, text := get(t, url+"/metrics")
	for _, want := range []string{
		"# HELP switchyard_test_resource_hits_total Requests seen by test_resource stages.",
		fmt.Sprintf(`switchyard_test_resource_hits_total{name="server"} %d`, reloads+1),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	write(cfg("b", 0))
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old instance to be closed after its generation retired", 5*time.Second, func() bool {
		return first.closed.Load() == 1
	})
	recs = records("server")
	if next := recs[len(recs)-1].res; next == first || next.closed.Load() != 0 {
		t.Fatal("the changed setting did not get a new, open instance")
	}
}
