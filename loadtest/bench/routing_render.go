package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The markers around BENCHMARKS.md's Routing section: --routing replaces
// what is between them (markers included) and leaves the rest of the file
// byte for byte.
const (
	routingBegin = "<!-- routing:begin -->"
	routingEnd   = "<!-- routing:end -->"
)

// routingSVGPath is the plot's path relative to BENCHMARKS.md, as the image
// link names it.
const routingSVGPath = "docs/img/routing-ttft.svg"

// aware is the strategy the others are compared with.
const aware = "inference_aware"

// Goals of the issue, checked in the section.
const (
	goalSharedRatio = 10 // round_robin p90 / inference_aware p90, shared prefixes
)

// approxTokensPerWord is the simulator's tokens per word of the load
// generator's vocabulary (words of up to 4 letters are 1 token, of 5-8 are 2).
const approxTokensPerWord = 1.5

// renderRouting writes the Routing section, markers included.
func renderRouting(b *strings.Builder, r *RoutingResults) {
	s := r.Setup
	ctxTokens := int(math.Round(float64(s.ContextWords) * approxTokensPerWord))
	ctxBlocks := (ctxTokens + s.BlockSize - 1) / max(s.BlockSize, 1)
	fmt.Fprintf(b, "%s\n## Routing\n\n", routingBegin)
	fmt.Fprintf(b, "Where a request lands decides whether its prompt's prefix is already in that server's prefix cache.\n")
	fmt.Fprintf(b, "The pool strategies side by side on a heterogeneous pool of simulators whose KV caches hold a few\n")
	fmt.Fprintf(b, "tenants' contexts each, but not all of them. This section is rendered by the full run and again,\n")
	fmt.Fprintf(b, "alone and in place, by `go run ./loadtest/bench --routing`; do not edit it by hand.\n\n")
	fmt.Fprintf(b, "- Date: %s (the comparison took %s)\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(1e9))
	fmt.Fprintf(b, "- Command: `%s`\n", r.Command)
	fmt.Fprintf(b, "- Pinning: %s\n", r.Pinning)
	fmt.Fprintf(b, "- Pool: one gateway per strategy, each with %d simulators embedded (backend kind `sim`) in one pool `%s`; speeds %s, times %g (simulated time runs %gx faster, so every time below is 1/%g of the unscaled simulator's); prefix caching on; %d KV blocks of %d tokens each (%d tokens); max-num-seqs %d; prefill %s per uncached token; ITL %s + %s per running sequence (before the time scale); no retries; %s\n",
		len(s.Speeds), routingModel, joinFloats(s.Speeds), s.TimeScale, s.TimeScale, s.TimeScale,
		s.KVBlocks, s.BlockSize, s.KVBlocks*s.BlockSize, s.MaxNumSeqs, s.PrefillPerToken, s.ITL, s.ITLPerSeq, scrapeText(s.Scrape))
	if strings.TrimSpace(s.PoolYAML) != "" {
		fmt.Fprintf(b, "- Pool settings added to every strategy's pool: `%s`\n", strings.Join(strings.Fields(s.PoolYAML), " "))
	}
	fmt.Fprintf(b, "- Shared-prefix load (`loadtest` `--prefix-tenants`): %d tenants, each with its own context of %d words (about %d tokens, %d blocks) as the system message, %d users per tenant (`\"user\": \"tenantT-userU\"`), questions of %s tokens, tenants uniform; all the contexts together need about %d blocks: %.1fx one simulator's cache, %.1fx the pool's\n",
		s.Tenants, s.ContextWords, ctxTokens, ctxBlocks, s.Users, s.QuestionTokens,
		s.Tenants*ctxBlocks, float64(s.Tenants*ctxBlocks)/float64(max(s.KVBlocks, 1)), float64(s.Tenants*ctxBlocks)/float64(max(s.KVBlocks*len(s.Speeds), 1)))
	if len(s.ControlRates) > 0 {
		fmt.Fprintf(b, "- Control load: random prompts of %s tokens, nothing shared\n", s.ControlPromptTokens)
	}
	fmt.Fprintf(b, "- Both: streamed chat with %d output tokens (`ignore_eos`), open loop; each point %s of warm-up (in the same run, so it fills the caches with the contexts then measured) and %s measured, %d times with the strategies in an order rotated from one repeat to the next; medians shown, p90's [min–max] in brackets\n",
		s.OutputTokens, s.Warmup, s.Duration, s.Repeats)
	fmt.Fprintf(b, "- Load average (1, 5, 15 min) before: %s; after: %s\n\n", r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(b, "TTFT is in ms from each request's intended send time to its first token. *Output tok/s* is the\n")
	fmt.Fprintf(b, "completion tokens of the requests completed within the measured window per second. *Prefix cache\n")
	fmt.Fprintf(b, "hits* is the share of prompt tokens the simulators served from their prefix caches (usage\n")
	fmt.Fprintf(b, "`cached_tokens` over `prompt_tokens`).\n\n")

	fmt.Fprintf(b, "### Shared prefixes\n\n")
	routingTable(b, r, RoutingShared, s.Rates)
	routingRatios(b, r, RoutingShared, s.Rates)
	if len(s.ControlRates) > 0 {
		fmt.Fprintf(b, "\n### No shared prefix (control)\n\n")
		routingTable(b, r, RoutingControl, s.ControlRates)
		routingRatios(b, r, RoutingControl, s.ControlRates)
	}

	fmt.Fprintf(b, "\n### Plot\n\n")
	fmt.Fprintf(b, "![TTFT p90 by rate and strategy, shared-prefix load](%s)\n\n", routingSVGPath)
	fmt.Fprintf(b, "The same, as text (TTFT p90 in ms, log scale):\n\n```text\n")
	b.WriteString(routingASCII(r))
	fmt.Fprintf(b, "```\n")
	if len(r.Notes) > 0 {
		fmt.Fprintf(b, "\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
	}
	fmt.Fprintf(b, "%s\n", routingEnd)
}

func routingTable(b *strings.Builder, r *RoutingResults, scenario string, rates []float64) {
	fmt.Fprintf(b, "| rate | strategy | TTFT p50 | TTFT p90 | TTFT p99 | output tok/s | prefix cache hits | errors |\n")
	fmt.Fprintf(b, "|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, rate := range rates {
		for _, st := range r.Setup.Strategies {
			p := r.Find(scenario, st, rate)
			if p == nil || len(p.Samples) == 0 {
				continue
			}
			a := p.Agg()
			p90 := ms(a.TTFTP90)
			if a.N > 1 {
				p90 = fmt.Sprintf("%s [%s–%s]", p90, ms(a.P90Min), ms(a.P90Max))
			}
			fmt.Fprintf(b, "| %g | %s | %s | %s | %s | %.0f | %.0f%% | %d%s |\n", rate, st,
				ms(a.TTFTP50), p90, ms(a.TTFTP99), a.OutputTPS, a.CachedShare*100, a.Errors, kindsSuffix(a.ErrorKinds))
		}
	}
}

// routingRatios writes each strategy's p90 over inference_aware's, rate by
// rate, and checks the goal for the scenario.
func routingRatios(b *strings.Builder, r *RoutingResults, scenario string, rates []float64) {
	if !slices.Contains(r.Setup.Strategies, aware) {
		fmt.Fprintf(b, "\n%s was not run (`--routing-strategies %s`): no ratios.\n", aware, strings.Join(r.Setup.Strategies, ","))
		return
	}
	var others []string
	for _, st := range r.Setup.Strategies {
		if st != aware {
			others = append(others, st)
		}
	}
	if len(others) == 0 {
		return
	}
	fmt.Fprintf(b, "\nTTFT p90 of each strategy over %s's (above 1: %s is faster):\n\n| rate |", aware, aware)
	for _, st := range others {
		fmt.Fprintf(b, " %s / %s |", st, aware)
	}
	fmt.Fprintf(b, "\n|---:|%s\n", strings.Repeat("---:|", len(others)))
	type verdict struct {
		rate       float64
		ratio      float64
		overlapped bool // the p90 ranges of the repeats overlap
	}
	var checked []verdict
	for _, rate := range rates {
		ap := r.Find(scenario, aware, rate)
		fmt.Fprintf(b, "| %g |", rate)
		for _, st := range others {
			op := r.Find(scenario, st, rate)
			v := verdict{rate: rate, ratio: math.NaN()}
			if ap != nil && op != nil && len(ap.Samples) > 0 && len(op.Samples) > 0 {
				a, o := ap.Agg(), op.Agg()
				if a.TTFTP90 > 0 {
					v.ratio = o.TTFTP90 / a.TTFTP90
				}
				v.overlapped = a.P90Min <= o.P90Max && o.P90Min <= a.P90Max
			}
			fmt.Fprintf(b, " %s |", ratioText(v.ratio))
			if (scenario == RoutingShared && st == "round_robin") || (scenario == RoutingControl && st == "least_outstanding") {
				checked = append(checked, v)
			}
		}
		fmt.Fprintf(b, "\n")
	}
	if len(checked) == 0 {
		return
	}
	var met, noise, missed []string
	for _, v := range checked {
		label := fmt.Sprintf("%g req/s (%s)", v.rate, ratioText(v.ratio))
		switch {
		case scenario == RoutingShared && v.ratio >= goalSharedRatio, scenario == RoutingControl && v.ratio >= 1:
			met = append(met, label)
		case scenario == RoutingControl && v.overlapped:
			noise = append(noise, label)
		default:
			missed = append(missed, label)
		}
	}
	goal := fmt.Sprintf("%s's p90 TTFT at least %dx better than round_robin's", aware, goalSharedRatio)
	if scenario == RoutingControl {
		goal = fmt.Sprintf("%s's p90 TTFT no worse than least_outstanding's", aware)
	}
	fmt.Fprintf(b, "\nGoal: %s.", goal)
	for _, part := range []struct {
		what string
		xs   []string
	}{{"Met at", met}, {"Worse, but within the spread of the repeats (the p90 ranges overlap), at", noise}, {"Not met at", missed}} {
		if len(part.xs) > 0 {
			fmt.Fprintf(b, " %s %s.", part.what, strings.Join(part.xs, ", "))
		}
	}
	fmt.Fprintf(b, "\n")
}

func scrapeText(every time.Duration) string {
	if every <= 0 {
		return "the simulators' metrics not scraped"
	}
	return fmt.Sprintf("the simulators' /metrics scraped every %s by every gateway", every)
}

func ratioText(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", v)
}

// ms formats milliseconds with three significant figures or so.
func ms(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func joinFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%g", x)
	}
	return strings.Join(s, ", ")
}

// spliceRouting puts section (markers included) into doc: in place of the
// one between the markers; else before "## Budget", where the full run
// renders it; else at the end. The rest of doc is kept byte for byte. A
// marker without its partner is an error: the file was edited by hand.
func spliceRouting(doc []byte, section string) ([]byte, error) {
	return spliceSection(doc, section, routingBegin, routingEnd)
}

// strategyColor gives each strategy a fixed colour in the plot.
func strategyColor(i int, st string) string {
	switch st {
	case "round_robin":
		return "#d62728"
	case "least_outstanding":
		return "#1f77b4"
	case aware:
		return "#2ca02c"
	}
	palette := []string{"#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"}
	return palette[i%len(palette)]
}

// RoutingSVG draws TTFT p90 (log scale) against the rate, one line per
// strategy, for the shared-prefix load; the control points are drawn as
// hollow markers at their rate. Plain SVG 1.1, no scripts, no fonts beyond
// sans-serif, deterministic.
func RoutingSVG(r *RoutingResults) string {
	const (
		w, h                     = 720, 420
		left, right, top, bottom = 90, 200, 50, 60
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	s := r.Setup
	dLo, dHi, ok := p90Decades(r)
	if !ok {
		dLo, dHi = 0, 1 // 1 to 10 ms
	}
	y := func(v float64) float64 { return float64(top) + ph*(1-(math.Log10(v)-dLo)/(dHi-dLo)) }
	// The rates, shared and control merged, evenly spaced.
	rates := append([]float64(nil), s.Rates...)
	for _, cr := range s.ControlRates {
		if !slices.Contains(rates, cr) {
			rates = append(rates, cr)
		}
	}
	slices.Sort(rates)
	x := func(rate float64) float64 {
		for i, v := range rates {
			if v == rate {
				if len(rates) == 1 {
					return float64(left) + pw/2
				}
				return float64(left) + pw*(0.05+0.9*float64(i)/float64(len(rates)-1))
			}
		}
		return float64(left)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">TTFT p90, shared-prefix load (%d tenants, %d simulators)</text>`+"\n",
		left, s.Tenants, len(s.Speeds))
	// Decade grid and labels.
	for d := dLo; d <= dHi; d++ {
		yy := y(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/>`+"\n", left, yy, w-right, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s ms</text>`+"\n", left-6, yy+4, decadeLabel(d))
	}
	for _, rate := range rates {
		xx := x(rate)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999"/>`+"\n", xx, h-bottom, xx, h-bottom+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", xx, h-bottom+18, rate)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999999"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">rate (requests/s)</text>`+"\n", float64(left)+pw/2, h-bottom+40)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">TTFT p90 (ms, log scale)</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	for i, st := range s.Strategies {
		c := strategyColor(i, st)
		var pts []string
		for _, rate := range s.Rates {
			p := r.Find(RoutingShared, st, rate)
			if p == nil || len(p.Samples) == 0 {
				continue
			}
			if v := p.Agg().TTFTP90; v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(rate), y(v)))
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
		}
		for _, pt := range pts {
			xs, ys, _ := strings.Cut(pt, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="4" fill="%s"/>`+"\n", xs, ys, c)
		}
		for _, rate := range s.ControlRates {
			p := r.Find(RoutingControl, st, rate)
			if p == nil || len(p.Samples) == 0 {
				continue
			}
			if v := p.Agg().TTFTP90; v > 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="#ffffff" stroke="%s" stroke-width="2"/>`+"\n", x(rate)-4, y(v)-4, c)
			}
		}
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", w-right+12, ly, w-right+36, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+42, ly+4, xmlEscape(st))
	}
	if len(s.ControlRates) > 0 {
		ly := top + 10 + 20*len(s.Strategies) + 10
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="8" height="8" fill="#ffffff" stroke="#555555" stroke-width="2"/>`+"\n", w-right+20, ly-4)
		fmt.Fprintf(&b, `<text x="%d" y="%d">control (no prefix)</text>`+"\n", w-right+42, ly+4)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func decadeLabel(d float64) string {
	v := math.Pow(10, d)
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(fmt.Sprintf("%.6f", v), "0")
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// p90Decades returns the powers of ten around the points' TTFT p90s (at
// least one decade apart), the plots' log scale; ok is false when no point
// has one.
func p90Decades(r *RoutingResults) (lo, hi float64, ok bool) {
	var vs []float64
	for _, p := range r.Points {
		if len(p.Samples) > 0 {
			vs = append(vs, p.Agg().TTFTP90)
		}
	}
	return logDecades(vs)
}

// routingASCII is the plot as text: one bar per strategy and rate, its
// length on a log scale of TTFT p90.
func routingASCII(r *RoutingResults) string {
	const width = 40
	s := r.Setup
	dLo, dHi, ok := p90Decades(r)
	if !ok {
		return "(no points)\n"
	}
	nameW := 0
	for _, st := range s.Strategies {
		nameW = max(nameW, len(st))
	}
	var b strings.Builder
	row := func(label, st string, v float64) {
		n := int(math.Round(width * (math.Log10(v) - dLo) / (dHi - dLo)))
		n = min(max(n, 1), width)
		fmt.Fprintf(&b, "%-16s %-*s |%s%s| %s\n", label, nameW, st, strings.Repeat("#", n), strings.Repeat(" ", width-n), ms(v))
	}
	block := func(scenario string, rates []float64, title string) {
		for _, rate := range rates {
			label := fmt.Sprintf("%s %g/s", title, rate)
			for _, st := range s.Strategies {
				p := r.Find(scenario, st, rate)
				if p == nil || len(p.Samples) == 0 {
					continue
				}
				if v := p.Agg().TTFTP90; v > 0 {
					row(label, st, v)
					label = ""
				}
			}
		}
	}
	fmt.Fprintf(&b, "%-16s %-*s  %-*s%s ms\n", "", nameW, "", width-len(decadeLabel(dHi))-3, decadeLabel(dLo)+" ms", decadeLabel(dHi))
	block(RoutingShared, s.Rates, "shared")
	block(RoutingControl, s.ControlRates, "control")
	return b.String()
}
