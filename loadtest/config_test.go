package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Dist
		wantErr string
	}{
		{"fixed:100", Dist{"fixed", 100, 0}, ""},
		{"100", Dist{"fixed", 100, 0}, ""},
		{"uniform:50-200", Dist{"uniform", 50, 200}, ""},
		{"normal:100,20", Dist{"normal", 100, 20}, ""},
		{" uniform: 5 - 5 ", Dist{"uniform", 5, 5}, ""},
		{"uniform:200-50", Dist{}, "MIN <= MAX"},
		{"uniform:50", Dist{}, "want uniform:MIN-MAX"},
		{"normal:100", Dist{}, "want normal:MEAN,STDDEV"},
		{"normal:100,-1", Dist{}, "stddev"},
		{"fixed:0", Dist{}, "must be in"},
		{"fixed:abc", Dist{}, "not a number"},
		{"fixed:NaN", Dist{}, "not a number"},
		{"zipf:1", Dist{}, "unknown kind"},
	}
	for _, tc := range tests {
		got, err := ParseDist(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseDist(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDist(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseDist(got.String()); err != nil || back != got {
			t.Errorf("ParseDist(%q.String()=%q) = %+v, %v", tc.in, got.String(), back, err)
		}
	}
}

func TestDistSample(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		d        Dist
		lo, hi   int
		wantMean float64
	}{
		{Fixed(7), 7, 7, 7},
		{Dist{"uniform", 50, 200}, 50, 200, 125},
		{Dist{"normal", 100, 10}, 1, 1 << 20, 100},
		{Dist{"normal", 2, 50}, 1, 1 << 20, -1}, // clamped at 1
	}
	for _, tc := range tests {
		var sum float64
		const n = 5000
		for range n {
			v := tc.d.Sample(r)
			if v < tc.lo || v > tc.hi {
				t.Fatalf("%v: sample %d outside [%d, %d]", tc.d, v, tc.lo, tc.hi)
			}
			sum += float64(v)
		}
		if mean := sum / n; tc.wantMean > 0 && (mean < tc.wantMean*0.95 || mean > tc.wantMean*1.05) {
			t.Errorf("%v: mean %.1f, want about %.1f", tc.d, mean, tc.wantMean)
		}
	}
}

func TestParseMix(t *testing.T) {
	t.Parallel()
	got, err := ParseMix("chat=0.5, stream=0.3,embeddings=0.2,chat=0.1")
	if err != nil || got["chat"] != 0.6 || got["stream"] != 0.3 || got["embeddings"] != 0.2 || len(got) != 3 {
		t.Errorf("ParseMix = %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"":           "no entries",
		"chat":       "want NAME=WEIGHT",
		"video=1":    "unknown scenario",
		"chat=-1":    "non-negative",
		"chat=lots":  "non-negative",
		"chat=+Inf":  "non-negative",
		"stream=NaN": "non-negative",
	} {
		if _, err := ParseMix(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMix(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{URL: "http://127.0.0.1:8080", Model: "m", Rate: 10, Duration: time.Second}
	tests := []struct {
		name    string
		mod     func(c *Config)
		wantErr string
	}{
		{"ok", func(c *Config) {}, ""},
		{"ok closed", func(c *Config) { c.Mode = ModeClosed; c.Rate = 0; c.Concurrency = 8 }, ""},
		{"ok embeddings only", func(c *Config) { c.Model = ""; c.EmbedModel = "e"; c.Scenario = ScenarioEmbeddings }, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url: required"},
		{"bad url", func(c *Config) { c.URL = "127.0.0.1:8080" }, "want http(s)://"},
		{"no model", func(c *Config) { c.Model = "" }, "model: required"},
		{"no rate", func(c *Config) { c.Rate = 0 }, "positive rate"},
		{"no bound", func(c *Config) { c.Duration = 0 }, "one bound is required"},
		{"bad mode", func(c *Config) { c.Mode = "x" }, `mode "x"`},
		{"bad scenario", func(c *Config) { c.Scenario = "x" }, `scenario "x"`},
		{"mix without weights", func(c *Config) { c.Scenario = ScenarioMix }, "needs weights"},
		{"mix zero", func(c *Config) { c.Scenario = ScenarioMix; c.Mix = map[string]float64{"chat": 0} }, "sum to zero"},
		{"mix unknown", func(c *Config) { c.Scenario = ScenarioMix; c.Mix = map[string]float64{"x": 1} }, `unknown scenario "x"`},
		{"ratio", func(c *Config) { c.RepeatRatio = 1.5 }, "repeat-ratio 1.5"},
		{"key pick", func(c *Config) { c.KeyPick = "x" }, `key-pick "x"`},
		{"inflight", func(c *Config) { c.MaxInflight = -1 }, "max-inflight"},
		{"dist", func(c *Config) { c.PromptTokens = Dist{Kind: "fixed"} }, "prompt-tokens"},
		{"ok tenants", func(c *Config) { c.PrefixTenants = 8; c.PrefixTokens = 4000; c.PrefixUsers = 3; c.PrefixSkew = 1.2 }, ""},
		{"ok tenants defaults", func(c *Config) { c.PrefixTenants = 8 }, ""},
		{"ok tenants in a mix", func(c *Config) {
			c.PrefixTenants = 2
			c.Scenario = ScenarioMix
			c.Mix = map[string]float64{"stream": 1, "embeddings": 1}
		}, ""},
		{"tenants negative", func(c *Config) { c.PrefixTenants = -1 }, "prefix-tenants -1"},
		{"tenants too many", func(c *Config) { c.PrefixTenants = 10001 }, "prefix-tenants 10001"},
		{"tenant tokens negative", func(c *Config) { c.PrefixTenants = 2; c.PrefixTokens = -5 }, "prefix-tokens -5"},
		{"tenant contexts too big", func(c *Config) { c.PrefixTenants = 5000; c.PrefixTokens = 1000 }, "5000000 tokens of contexts"},
		{"tenant users", func(c *Config) { c.PrefixTenants = 2; c.PrefixUsers = -1 }, "prefix-users -1"},
		{"tenant skew", func(c *Config) { c.PrefixTenants = 2; c.PrefixSkew = -0.5 }, "prefix-skew -0.5"},
		{"tenant skew NaN", func(c *Config) { c.PrefixTenants = 2; c.PrefixSkew = math.NaN() }, "prefix-skew NaN"},
		{"tenants and shared prefix", func(c *Config) { c.PrefixTenants = 2; c.SharedPrefixRatio = 0.5 }, "use one or the other"},
		{"tenants without chat", func(c *Config) {
			c.PrefixTenants = 2
			c.Model = ""
			c.EmbedModel = "e"
			c.Scenario = ScenarioEmbeddings
		}, "needs chat, stream or completions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func testGenerator(t testing.TB, mod func(c *Config)) *generator {
	t.Helper()
	c := Config{URL: "http://x", Model: `m"1`, EmbedModel: "e", Rate: 1, Requests: 1, SharedPrefixTokens: 16}
	if mod != nil {
		mod(&c)
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := newGenerator(c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGeneratorBodies(t *testing.T) {
	t.Parallel()
	g := testGenerator(t, func(c *Config) {
		c.Scenario = ScenarioMix
		c.Mix = map[string]float64{"chat": 1, "stream": 1, "completions": 1, "embeddings": 1}
		c.SharedPrefixRatio = 0.5
		c.RepeatRatio = 0.5
		c.ParaphraseRatio = 0.5
		c.IgnoreEOS = true
		c.PromptTokens = Dist{"uniform", 5, 10}
	})
	var seen [numKinds]int
	for range 400 {
		k, p, para, _ := g.pick()
		seen[k]++
		body := g.appendBody(nil, k, p, para)
		var v struct {
			Model         string `json:"model"`
			Stream        bool   `json:"stream"`
			MaxTokens     int    `json:"max_tokens"`
			Input         string `json:"input"`
			Prompt        string `json:"prompt"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%v body is not JSON: %v\n%s", k, err, body)
		}
		switch k {
		case kindEmbeddings:
			if v.Model != "e" || v.Input == "" {
				t.Fatalf("embeddings body: %s", body)
			}
		case kindCompletions:
			if v.Model != `m"1` || v.Prompt == "" || v.MaxTokens != 64 || v.Stream {
				t.Fatalf("completions body: %s", body)
			}
		default:
			if v.Model != `m"1` || len(v.Messages) == 0 || v.Messages[len(v.Messages)-1].Role != "user" || v.Stream != (k == kindStream) {
				t.Fatalf("chat body: %s", body)
			}
			if k == kindStream && (v.StreamOptions == nil || !v.StreamOptions.IncludeUsage) {
				t.Fatalf("stream body lacks include_usage: %s", body)
			}
		}
		if !bytes.Contains(body, []byte(`"ignore_eos":true`)) && k != kindEmbeddings {
			t.Fatalf("ignore_eos missing: %s", body)
		}
	}
	for k, n := range seen {
		if n < 60 {
			t.Errorf("kind %v drawn %d of 400 times", kind(k), n)
		}
	}
}

func TestGeneratorRatios(t *testing.T) {
	t.Parallel()
	g := testGenerator(t, func(c *Config) {
		c.SharedPrefixRatio = 0.3
		c.RepeatRatio = 0.4
		c.ParaphraseRatio = 0.5
	})
	const n = 4000
	bodies := map[string]int{}
	prefixed, paraphrased := 0, 0
	for range n {
		k, p, para, _ := g.pick()
		body := string(g.appendBody(nil, k, p, para))
		bodies[body]++
		if strings.Contains(body, `"role":"system"`) {
			prefixed++
			if !strings.Contains(body, string(g.prefix)) {
				t.Fatalf("system prompt is not the shared prefix: %s", body)
			}
		}
		if para {
			paraphrased++
		}
	}
	exactRepeats := n - len(bodies) // bodies seen before, including paraphrases seen twice
	check := func(what string, got int, want float64) {
		t.Helper()
		if f := float64(got) / n; f < want-0.04 || f > want+0.04 {
			t.Errorf("%s share = %.3f, want %.2f", what, f, want)
		}
	}
	check("shared prefix", prefixed, 0.3)
	check("paraphrase", paraphrased, 0.2)
	if exactRepeats < n*15/100 {
		t.Errorf("exact repeats = %d of %d, want about 20%%", exactRepeats, n)
	}
}

func TestGeneratorDeterministicAndKeys(t *testing.T) {
	t.Parallel()
	gen := func(pick string) (bodies, keys []string) {
		g := testGenerator(t, func(c *Config) {
			c.RepeatRatio = 0.5
			c.APIKeys = []string{"a", "b", "c"}
			c.KeyPick = pick
			c.Seed = 42
		})
		for range 30 {
			k, p, para, auth := g.pick()
			bodies = append(bodies, string(g.appendBody(nil, k, p, para)))
			keys = append(keys, string(auth))
		}
		return bodies, keys
	}
	b1, k1 := gen(KeyRoundRobin)
	b2, _ := gen(KeyRoundRobin)
	if strings.Join(b1, "\n") != strings.Join(b2, "\n") {
		t.Error("same seed gave different bodies")
	}
	for i, k := range k1 {
		if want := "Bearer " + []string{"a", "b", "c"}[i%3]; k != want {
			t.Fatalf("round robin key %d = %q, want %q", i, k, want)
		}
	}
	_, kr := gen(KeyRandom)
	counts := map[string]int{}
	for _, k := range kr {
		counts[k]++
	}
	if len(counts) != 3 {
		t.Errorf("random keys used %v, want all three", counts)
	}
}

// tenantBody is what a multi-tenant request carries.
type tenantBody struct {
	User     string                           `json:"user"`
	Prompt   string                           `json:"prompt"`
	Input    string                           `json:"input"`
	Messages []struct{ Role, Content string } `json:"messages"`
}

func TestGeneratorTenants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scenario string
		mix      map[string]float64
		tenants  int
		users    int
		skew     float64
		// wantShare0 is tenant 0's expected share of the requests.
		wantShare0 float64
	}{
		{"uniform chat", ScenarioChat, nil, 8, 3, 0, 1.0 / 8},
		{"uniform stream", ScenarioStream, nil, 4, 1, 0, 1.0 / 4},
		{"zipf 1", ScenarioStream, nil, 4, 2, 1, 1 / (1 + 1.0/2 + 1.0/3 + 1.0/4)},
		{"zipf 2", ScenarioChat, nil, 8, 2, 2, 1 / (1 + 1.0/4 + 1.0/9 + 1.0/16 + 1.0/25 + 1.0/36 + 1.0/49 + 1.0/64)},
		{"one tenant", ScenarioChat, nil, 1, 5, 0, 1},
		{"completions and embeddings", ScenarioMix, map[string]float64{"completions": 1, "embeddings": 1}, 3, 2, 0, 1.0 / 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := testGenerator(t, func(c *Config) {
				c.Scenario, c.Mix = tc.scenario, tc.mix
				c.PrefixTenants, c.PrefixTokens, c.PrefixUsers, c.PrefixSkew = tc.tenants, 50, tc.users, tc.skew
				c.PromptTokens = Dist{"uniform", 5, 10}
			})
			if len(g.tenants) != tc.tenants {
				t.Fatalf("%d tenant contexts, want %d", len(g.tenants), tc.tenants)
			}
			contexts := map[string]int{}
			for i, ctx := range g.tenants {
				if n := len(strings.Fields(string(ctx))); n != 50 {
					t.Fatalf("tenant %d context has %d words, want 50", i, n)
				}
				contexts[string(ctx)] = i
			}
			if len(contexts) != tc.tenants {
				t.Fatalf("tenant contexts are not distinct")
			}
			const n = 4000
			perTenant := make([]int, tc.tenants)
			users := map[string]bool{}
			questions := map[string]bool{}
			withTenant := 0
			for range n {
				k, p, para, _ := g.pick()
				body := g.appendBody(nil, k, p, para)
				var v tenantBody
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("body is not JSON: %v\n%s", err, body)
				}
				if k == kindEmbeddings {
					if v.User != "" || p.tenant != -1 {
						t.Fatalf("embeddings request with a tenant: %s", body)
					}
					continue
				}
				withTenant++
				var ctx, question string
				if k == kindCompletions {
					ctx, question, _ = strings.Cut(v.Prompt, "\n\n")
				} else {
					if len(v.Messages) != 2 || v.Messages[0].Role != "system" || v.Messages[1].Role != "user" {
						t.Fatalf("want a system and a user message: %s", body)
					}
					ctx, question = v.Messages[0].Content, v.Messages[1].Content
				}
				tenant, ok := contexts[ctx]
				if !ok {
					t.Fatalf("context is no tenant's: %s", body)
				}
				perTenant[tenant]++
				var ut, uu int
				if _, err := fmt.Sscanf(v.User, "tenant%d-user%d", &ut, &uu); err != nil || ut != tenant || uu < 0 || uu >= tc.users ||
					v.User != fmt.Sprintf("tenant%d-user%d", ut, uu) {
					t.Fatalf("user %q for tenant %d with %d users", v.User, tenant, tc.users)
				}
				users[v.User] = true
				questions[question] = true
			}
			if len(users) != tc.tenants*tc.users {
				t.Errorf("%d distinct users seen, want %d", len(users), tc.tenants*tc.users)
			}
			if len(questions) < withTenant*9/10 {
				t.Errorf("%d distinct questions in %d requests: the questions should vary", len(questions), withTenant)
			}
			if share := float64(perTenant[0]) / float64(withTenant); math.Abs(share-tc.wantShare0) > 0.03 {
				t.Errorf("tenant 0 got %.3f of the requests, want %.3f (per tenant: %v)", share, tc.wantShare0, perTenant)
			}
			for i := 1; i < tc.tenants && tc.skew > 0; i++ {
				if perTenant[i] > perTenant[i-1]+n/50 {
					t.Errorf("skew %g: tenant %d drawn more often than tenant %d: %v", tc.skew, i, i-1, perTenant)
				}
			}
		})
	}
}

// The same seed gives the same tenants, users and questions; another seed
// gives other contexts.
func TestGeneratorTenantsDeterministic(t *testing.T) {
	t.Parallel()
	gen := func(seed int64) []string {
		g := testGenerator(t, func(c *Config) {
			c.PrefixTenants, c.PrefixTokens, c.PrefixUsers, c.Seed = 5, 20, 3, seed
			c.RepeatRatio = 0.3
		})
		var out []string
		for range 50 {
			k, p, para, _ := g.pick()
			out = append(out, string(g.appendBody(nil, k, p, para)))
		}
		return out
	}
	a, b, c := gen(7), gen(7), gen(8)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different bodies")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same bodies")
	}
}

func FuzzParseDist(f *testing.F) {
	for _, s := range []string{"fixed:100", "uniform:50-200", "normal:100,20", "7", "uniform:-1-5", "normal:1e308,1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDist(s)
		if err != nil {
			return
		}
		back, err := ParseDist(d.String())
		if err != nil || back != d {
			t.Fatalf("%q: round trip %q gave %+v, %v; want %+v", s, d.String(), back, err, d)
		}
		r := rand.New(rand.NewPCG(1, 1))
		for range 10 {
			if v := d.Sample(r); v < 1 || v > maxTokensPerDist {
				t.Fatalf("%q: sample %d out of range", s, v)
			}
		}
	})
}

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"chat=0.5,stream=0.3,embeddings=0.2", "chat=1", ",,", "mix=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		c := Config{Scenario: ScenarioMix, Mix: m}
		if _, err := c.kindWeights(); err != nil && !strings.Contains(err.Error(), "sum to zero") {
			t.Fatalf("%q: parsed mix %v rejected: %v", s, m, err)
		}
	})
}
