package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// The markers around BENCHMARKS.md's Batching section: --batching replaces
// what is between them (markers included) and leaves the rest of the file
// byte for byte.
const (
	batchingBegin = "<!-- batching:begin -->"
	batchingEnd   = "<!-- batching:end -->"
)

// batchingSVGPath is the plot's path relative to BENCHMARKS.md, as the image
// link names it.
const batchingSVGPath = "docs/img/batching-throughput.svg"

// Goals of the issue, checked in the section.
const (
	goalBatchRatio   = 5   // throughput on / off at goalBatchClients
	goalBatchClients = 256 // the concurrency of the throughput goal
)

// workloadTitle is a workload's heading in the section.
func workloadTitle(s BatchingSetup, w string) string {
	if w == BatchClassifier {
		return fmt.Sprintf("KServe v2 classifier (`POST %s`, one row [1, %d] FP32 per request)", batchPath(w), s.ClassifierFeatures)
	}
	return fmt.Sprintf("Embeddings (`POST %s`, one input per request)", batchPath(w))
}

// renderBatching writes the Batching section, markers included.
func renderBatching(b *strings.Builder, r *BatchingResults) {
	s := r.Setup
	fmt.Fprintf(b, "%s\n## Batching\n\n", batchingBegin)
	fmt.Fprintf(b, "The gateway's dynamic batcher (docs/batching.md) in front of a simulator whose every call costs a\n")
	fmt.Fprintf(b, "fixed overhead plus a little per item, a few calls at once: one item per request from concurrent\n")
	fmt.Fprintf(b, "closed-loop clients, batching off and on. This section is rendered by the full run and again, alone\n")
	fmt.Fprintf(b, "and in place, by `go run ./loadtest/bench --batching`; do not edit it by hand.\n\n")
	fmt.Fprintf(b, "- Date: %s (the comparison took %s)\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second))
	fmt.Fprintf(b, "- Command: `%s`\n", r.Command)
	fmt.Fprintf(b, "- Pinning: %s\n", r.Pinning)
	var modes []string
	for _, m := range s.modes() {
		modes = append(modes, m.String())
	}
	fmt.Fprintf(b, "- Gateways: one per setting (%s), each with its own simulator embedded (backend kind `sim`) and two pools on it, no retries:\n", strings.Join(modes, "; "))
	fmt.Fprintf(b, "  - `%s`, embeddings: a call of n inputs costs %s + n × %s, %d calls at once; vectors of %d numbers; inputs of %d words\n",
		batchEmbedModel, s.EmbedCallOverhead, s.EmbedPerItem, s.EmbedConcurrency, s.EmbedDim, s.EmbedWords)
	fmt.Fprintf(b, "  - `%s`, KServe v2 inference: a call of N rows costs %s + N × %s, %d calls at once; rows of %d FP32 features into %d classes\n",
		batchClassifierModel, s.ClassifierCallOverhead, s.ClassifierPerItem, s.ClassifierConcurrency, s.ClassifierFeatures, s.ClassifierClasses)
	fmt.Fprintf(b, "- Batching on: `max_batch_size: %d`, `max_in_flight` the simulator's calls at once (%d for embeddings, %d for the classifier), `max_queue_delay` as the rows say; the other keys their defaults\n",
		s.MaxBatchSize, s.EmbedConcurrency, s.ClassifierConcurrency)
	var bounds []string
	for _, w := range s.Workloads {
		bounds = append(bounds, fmt.Sprintf("%s %.0f req/s in calls of one, %.0f in full batches of %d", w, s.bound(w, 1), s.bound(w, s.MaxBatchSize), s.MaxBatchSize))
	}
	fmt.Fprintf(b, "- The simulator's bound (every call slot always busy): %s; the gateway and the load share the machine's CPUs, so the batched figures are bounded by CPU first\n", strings.Join(bounds, "; "))
	fmt.Fprintf(b, "- Load: closed loop at %s clients; each client sends its next request as soon as its previous one is answered and checked: status 200; for embeddings one embedding of %d numbers at index 0; for the classifier the probabilities and label of its own row, recomputed with `sim.NewClassifier` (an answer that is not the request's own fails the run); each point %s of warm-up, then %s measured (requests count in the window they complete in); every setting gets the same requests within a repeat; %s with the settings in an order rotated from one repeat to the next; medians shown, req/s's [min–max] in brackets\n",
		joinInts(s.Clients), s.EmbedDim, s.Warmup, s.Duration, repeatsText(s.Repeats))
	fmt.Fprintf(b, "- Load average (1, 5, 15 min) before: %s; after: %s\n\n", r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(b, "Latencies are in ms, from sending a request to its answer. *items/batch* is the mean items per\n")
	fmt.Fprintf(b, "upstream call the gateway sent in the window (its `switchyard_batch_items` histogram; with\n")
	fmt.Fprintf(b, "batching off every call has one). *gateway busy* is the gateway's CPU time (its simulator's\n")
	fmt.Fprintf(b, "included) over the window, *load busy* the load generator's (100%% = one CPU): near 100%% on\n")
	fmt.Fprintf(b, "either side, that side's CPU limits the figure rather than the simulated server. *on/off* is the\n")
	fmt.Fprintf(b, "row's median over batching off's at the same number of clients (req/s: above 1 is more; p50:\n")
	fmt.Fprintf(b, "below 1 is faster).\n")
	for _, w := range s.Workloads {
		fmt.Fprintf(b, "\n### %s\n\n", workloadTitle(s, w))
		batchingTable(b, r, w)
		batchingGoals(b, r, w)
	}
	fmt.Fprintf(b, "\n### Plot\n\n")
	fmt.Fprintf(b, "![Throughput by concurrent clients, batching off and on](%s)\n\n", batchingSVGPath)
	fmt.Fprintf(b, "The same, as text (req/s, log scale):\n\n```text\n")
	b.WriteString(batchingASCII(r))
	fmt.Fprintf(b, "```\n")
	if len(r.Notes) > 0 {
		fmt.Fprintf(b, "\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
	}
	fmt.Fprintf(b, "%s\n", batchingEnd)
}

func batchingTable(b *strings.Builder, r *BatchingResults, w string) {
	fmt.Fprintf(b, "| clients | batching | req/s | p50 | p99 | items/batch | gateway busy | load busy | req/s on/off | p50 on/off | errors |\n")
	fmt.Fprintf(b, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Setup.Clients {
		var off *BatchingAgg
		if p := r.Find(w, c, BatchingMode{}); p != nil && len(p.Samples) > 0 {
			a := p.Agg()
			off = &a
		}
		for _, m := range r.Setup.modes() {
			p := r.Find(w, c, m)
			if p == nil || len(p.Samples) == 0 {
				continue
			}
			a := p.Agg()
			tp := fmt.Sprintf("%.0f", a.Throughput)
			if a.N > 1 {
				tp = fmt.Sprintf("%s [%.0f–%.0f]", tp, a.TMin, a.TMax)
			}
			tpRatio, p50Ratio := "–", "–"
			if m.On && off != nil {
				tpRatio, p50Ratio = ratioText(a.Throughput/off.Throughput), ratioText(a.P50/off.P50)
			}
			items := "–"
			if a.BatchItems > 0 {
				items = fmt.Sprintf("%.1f", a.BatchItems)
			}
			fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d%s |\n", c, m, tp, ms(a.P50), ms(a.P99),
				items, busyText(a.GatewayBusy), busyText(a.LoadBusy), tpRatio, p50Ratio, a.Errors, kindsSuffix(a.ErrorKinds))
		}
	}
}

// batchingGoals checks the goals for workload w: at least
// goalBatchRatio times the throughput at goalBatchClients (or the most
// clients measured) with batching on, and at one client a p50 at most
// max_queue_delay plus one batch's service time above batching off's.
func batchingGoals(b *strings.Builder, r *BatchingResults, w string) {
	s := r.Setup
	on := s.modes()[1:]
	if len(on) == 0 || len(s.Clients) == 0 {
		fmt.Fprintf(b, "\nBatching on was not run (`--batching-delays ''`): no goals checked.\n")
		return
	}
	agg := func(c int, m BatchingMode) (BatchingAgg, bool) {
		p := r.Find(w, c, m)
		if p == nil || len(p.Samples) == 0 {
			return BatchingAgg{}, false
		}
		return p.Agg(), true
	}
	report := func(goal string, met, missed []string) {
		fmt.Fprintf(b, "\nGoal: %s.", goal)
		if len(met) > 0 {
			fmt.Fprintf(b, " Met for %s.", strings.Join(met, ", "))
		}
		if len(missed) > 0 {
			fmt.Fprintf(b, " Not met for %s.", strings.Join(missed, ", "))
		}
		fmt.Fprintf(b, "\n")
	}

	most := s.Clients[0]
	for _, c := range s.Clients {
		most = max(most, c)
	}
	at := fmt.Sprintf("%d clients", most)
	if most != goalBatchClients {
		at += fmt.Sprintf(" (the most measured; the goal names %d)", goalBatchClients)
	}
	var met, missed []string
	if off, ok := agg(most, BatchingMode{}); ok {
		for _, m := range on {
			a, ok := agg(most, m)
			if !ok {
				continue
			}
			ratio := a.Throughput / off.Throughput
			label := fmt.Sprintf("%s (%s)", m, ratioText(ratio))
			if ratio >= goalBatchRatio {
				met = append(met, label)
			} else {
				missed = append(missed, label)
			}
		}
	}
	report(fmt.Sprintf("with batching on, at least %dx the throughput of batching off at %s", goalBatchRatio, at), met, missed)

	one := s.serviceTime(w, 1)
	met, missed = nil, nil
	if off, ok := agg(1, BatchingMode{}); ok {
		for _, m := range on {
			a, ok := agg(1, m)
			if !ok {
				continue
			}
			limit := m.Delay + one
			added := a.P50 - off.P50
			label := fmt.Sprintf("%s (%+.2f ms, at most %s)", m, added, limit)
			if added <= float64(limit)/1e6 {
				met = append(met, label)
			} else {
				missed = append(missed, label)
			}
		}
	} else {
		fmt.Fprintf(b, "\nOne client was not measured: the latency goal is not checked.\n")
		return
	}
	report(fmt.Sprintf("at 1 client, batching adds at most max_queue_delay + one batch's service time (%s for a batch of one) to p50", one), met, missed)
}

func busyText(v float64) string {
	if !(v > 0) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", v*100)
}

func clientsText(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}

func repeatsText(n int) string {
	if n == 1 {
		return "1 repeat"
	}
	return fmt.Sprintf("%d repeats", n)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%d", x)
	}
	return strings.Join(s, ", ")
}

// spliceBatching puts section (markers included) into doc, as
// spliceSection does with the Batching markers.
func spliceBatching(doc []byte, section string) ([]byte, error) {
	return spliceSection(doc, section, batchingBegin, batchingEnd)
}

// spliceSection puts section (markers included) into doc: in place of the
// one between the markers begin and end; else before "## Budget", where the
// full run renders the sections; else at the end. The rest of doc is kept
// byte for byte. A marker without its partner is an error: the file was
// edited by hand.
func spliceSection(doc []byte, section, begin, end string) ([]byte, error) {
	var out bytes.Buffer
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	switch {
	case i >= 0 && j > i:
		stop := j + len(end)
		if stop < len(doc) && doc[stop] == '\n' {
			stop++
		}
		out.Write(doc[:i])
		out.WriteString(section)
		out.Write(doc[stop:])
		return out.Bytes(), nil
	case i >= 0 || j >= 0:
		return nil, fmt.Errorf("the markers %s and %s are not both there, in that order: restore them or rerun the full harness", begin, end)
	}
	if k := bytes.Index(doc, []byte("\n## Budget")); k >= 0 {
		out.Write(doc[:k])
		out.WriteString("\n")
		out.WriteString(section)
		out.Write(doc[k:])
		return out.Bytes(), nil
	}
	out.Write(doc)
	if len(doc) > 0 && !bytes.HasSuffix(doc, []byte("\n")) {
		out.WriteString("\n")
	}
	out.WriteString("\n")
	out.WriteString(section)
	return out.Bytes(), nil
}

// logDecades returns the powers of ten around the positive values of vs (at
// least one decade apart), a plot's log scale; ok is false when there are
// none.
func logDecades(vs []float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 0, false
	}
	lo, hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi, true
}

// throughputs are the median throughputs of r's points.
func (r *BatchingResults) throughputs() []float64 {
	var vs []float64
	for _, p := range r.Points {
		if len(p.Samples) > 0 {
			vs = append(vs, p.Agg().Throughput)
		}
	}
	return vs
}

// workloadColor gives each workload a fixed colour in the plot.
func workloadColor(w string) string {
	if w == BatchClassifier {
		return "#ff7f0e"
	}
	return "#1f77b4"
}

// modeDash is the stroke of a mode's line: off dashed, on solid, on with a
// delay dotted.
func modeDash(m BatchingMode) string {
	switch {
	case !m.On:
		return ` stroke-dasharray="6 4"`
	case m.Delay == 0:
		return ""
	default:
		return ` stroke-dasharray="2 3"`
	}
}

// modeMarker draws a mode's point: off a hollow circle, on a filled one, on
// with a delay a filled square.
func modeMarker(b *strings.Builder, m BatchingMode, x, y float64, c string) {
	switch {
	case !m.On:
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#ffffff" stroke="%s" stroke-width="2"/>`+"\n", x, y, c)
	case m.Delay == 0:
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x, y, c)
	default:
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="7" height="7" fill="%s"/>`+"\n", x-3.5, y-3.5, c)
	}
}

// BatchingSVG draws the throughput (log scale) against the concurrent
// clients, one line per workload and batching setting. Plain SVG 1.1, no
// scripts, no fonts beyond sans-serif, deterministic.
func BatchingSVG(r *BatchingResults) string {
	const (
		w, h                     = 760, 420
		left, right, top, bottom = 90, 230, 50, 60
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	s := r.Setup
	dLo, dHi, ok := logDecades(r.throughputs())
	if !ok {
		dLo, dHi = 2, 4 // 100 to 10000 req/s
	}
	y := func(v float64) float64 { return float64(top) + ph*(1-(math.Log10(v)-dLo)/(dHi-dLo)) }
	x := func(i int) float64 {
		if len(s.Clients) == 1 {
			return float64(left) + pw/2
		}
		return float64(left) + pw*(0.05+0.9*float64(i)/float64(len(s.Clients)-1))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">Throughput, one item per request, batching off and on (max batch %d)</text>`+"\n", left, s.MaxBatchSize)
	for d := dLo; d <= dHi; d++ {
		yy := y(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/>`+"\n", left, yy, w-right, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, decadeLabel(d))
	}
	for i, c := range s.Clients {
		xx := x(i)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999"/>`+"\n", xx, h-bottom, xx, h-bottom+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", xx, h-bottom+18, c)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999999"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">concurrent clients (closed loop)</text>`+"\n", float64(left)+pw/2, h-bottom+40)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">requests/s (log scale)</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	entry := 0
	for _, wl := range s.Workloads {
		c := workloadColor(wl)
		for _, m := range s.modes() {
			type pt struct{ x, y float64 }
			var pts []pt
			for i, cl := range s.Clients {
				p := r.Find(wl, cl, m)
				if p == nil || len(p.Samples) == 0 {
					continue
				}
				if v := p.Agg().Throughput; v > 0 {
					pts = append(pts, pt{x(i), y(v)})
				}
			}
			if len(pts) > 1 {
				coords := make([]string, len(pts))
				for i, p := range pts {
					coords[i] = fmt.Sprintf("%.1f,%.1f", p.x, p.y)
				}
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(coords, " "), c, modeDash(m))
			}
			for _, p := range pts {
				modeMarker(&b, m, p.x, p.y, c)
			}
			ly := top + 10 + 20*entry
			entry++
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", w-right+12, ly, w-right+36, ly, c, modeDash(m))
			modeMarker(&b, m, float64(w-right+24), float64(ly), c)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+42, ly+4, xmlEscape(wl+", "+m.String()))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// batchingASCII is the plot as text: one bar per workload, clients and
// setting, its length on a log scale of the throughput.
func batchingASCII(r *BatchingResults) string {
	const width = 40
	s := r.Setup
	dLo, dHi, ok := logDecades(r.throughputs())
	if !ok {
		return "(no points)\n"
	}
	modeW := 0
	for _, m := range s.modes() {
		modeW = max(modeW, len(m.String()))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %-*s  %-*s%s\n", "", modeW, "", width-len(decadeLabel(dHi)), decadeLabel(dLo), decadeLabel(dHi))
	for _, wl := range s.Workloads {
		for _, c := range s.Clients {
			label := fmt.Sprintf("%s %s", wl, clientsText(c))
			for _, m := range s.modes() {
				p := r.Find(wl, c, m)
				if p == nil || len(p.Samples) == 0 {
					continue
				}
				v := p.Agg().Throughput
				if !(v > 0) {
					continue
				}
				n := int(math.Round(width * (math.Log10(v) - dLo) / (dHi - dLo)))
				n = min(max(n, 1), width)
				fmt.Fprintf(&b, "%-22s %-*s |%s%s| %.0f\n", label, modeW, m, strings.Repeat("#", n), strings.Repeat(" ", width-n), v)
				label = ""
			}
		}
	}
	return b.String()
}
