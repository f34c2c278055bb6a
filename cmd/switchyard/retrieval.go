package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/retrieve"
	"switchyard/internal/retrieve/eval"
	"switchyard/plugins/retrieval"
)

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// openLibrary starts the config's gateway without listening (its
// embedded simulators, pools and collections: a pool embedder is called
// through it) and returns its retrieval library; stop shuts it down.
func openLibrary(cfgPath string, logOut io.Writer) (lib *retrieval.Library, stop func(), err error) {
	level := slog.LevelWarn
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	srv, err := gateway.New(gateway.Options{ConfigPath: cfgPath, Registry: newRegistry(), Log: log, Version: version})
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	lib, _ = srv.Current().Service(retrieval.ServiceName).(*retrieval.Library)
	if lib == nil {
		stop()
		return nil, nil, errors.New("the retrieval plugin is not registered")
	}
	return lib, stop, nil
}

func runIngest(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (YAML); required")
	coll := fs.String("collection", "", "collection to add to (collections[].name); required")
	tenants := fs.String("acl-tenants", "", "only callers of these tenants see the documents (comma-separated)")
	groups := fs.String("acl-groups", "", "only callers in one of these groups see them (comma-separated)")
	keys := fs.String("acl-keys", "", "only these key ids see them (comma-separated)")
	var meta listFlag
	fs.Var(&meta, "metadata", "an attribute KEY=VALUE of every document, for search filters (repeatable)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: switchyard ingest --config FILE --collection NAME [flags] PATH...")
		fmt.Fprintln(fs.Output(), "Adds files (plain text, Markdown, HTML, JSON Lines; directories recursively) to a collection; a document's id is its path relative to the working directory.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" || *coll == "" || fs.NArg() == 0 {
		fs.Usage()
		return errors.New("--config, --collection and at least one PATH are required")
	}
	o := retrieval.IngestOptions{ACL: retrieve.ACL{Tenants: splitList(*tenants), Groups: splitList(*groups), Keys: splitList(*keys)}}
	if len(meta) > 0 {
		o.Metadata = map[string]any{}
		for _, kv := range meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--metadata %q: want KEY=VALUE", kv)
			}
			o.Metadata[k] = v
		}
	}
	if cfg, err := config.Load(*cfgPath); err != nil {
		return err
	} else if cfg.Collection(*coll) == nil {
		names := []string{}
		for _, c := range cfg.Collections {
			names = append(names, c.Name)
		}
		return fmt.Errorf("%s has no collection %q (collections: %s)", *cfgPath, *coll, strings.Join(names, ", "))
	}
	lib, stop, err := openLibrary(*cfgPath, os.Stderr)
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	bar := &progressBar{w: os.Stderr, on: !*quiet && isTerminal(os.Stderr)}
	o.Progress = bar.update
	sum, err := lib.Ingest(ctx, *coll, fs.Args(), o)
	bar.done()
	for _, f := range sum.Failures {
		fmt.Fprintf(os.Stderr, "failed: %s: %v\n", f.Path, f.Err)
	}
	if err != nil {
		return err
	}
	rate := ""
	if s := sum.Took.Seconds(); s > 0 && sum.Chunks > 0 {
		rate = fmt.Sprintf(", %.0f chunks/s", float64(sum.Chunks)/s)
	}
	fmt.Printf("%s: %d files: %d added (%d chunks, %d bytes), %d unchanged, %d failed in %s%s\n",
		*coll, sum.Files, sum.Added, sum.Chunks, sum.Bytes, sum.Unchanged, sum.Failed, sum.Took.Round(time.Millisecond), rate)
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d files failed", sum.Failed, sum.Files)
	}
	return nil
}

// progressBar draws "[=====>    ] 12/40 path" on a terminal, one line
// rewritten; elsewhere it prints nothing (the summary follows).
type progressBar struct {
	w  io.Writer
	on bool
	n  int
}

func (b *progressBar) update(p retrieval.IngestProgress) {
	if !b.on {
		return
	}
	const width = 30
	fill := width * p.Done / max(p.Files, 1)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	name := p.Path
	if len(name) > 40 {
		name = "..." + name[len(name)-37:]
	}
	line := fmt.Sprintf("\r[%s] %d/%d %s", bar, p.Done, p.Files, name)
	fmt.Fprintf(b.w, "%-*s", b.n, line)
	b.n = len(line)
}

func (b *progressBar) done() {
	if b.on && b.n > 0 {
		fmt.Fprintln(b.w)
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runEval(args []string) error {
	if len(args) == 0 || args[0] != "retrieval" {
		return errors.New("usage: switchyard eval retrieval --config FILE --collection NAME --dataset DIR|FILE [flags]")
	}
	fs := flag.NewFlagSet("eval retrieval", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (YAML); required")
	coll := fs.String("collection", "", "collection to search; required")
	dataset := fs.String("dataset", "", "a labelled set: a directory with corpus/ and questions.jsonl (its corpus ingested into the collection), or a questions.jsonl whose passages name the collection's document ids; required")
	k := fs.Int("k", eval.DefaultK, "the cutoff of recall@k and nDCG@k")
	modes := fs.String("mode", "hybrid,vector,keyword", "modes to compare (comma-separated)")
	tenant := fs.String("tenant", "", "search as a caller of this tenant (the ACL applies)")
	groups := fs.String("groups", "", "search as a caller in these groups (comma-separated)")
	key := fs.String("key", "", "search as this key id")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" || *coll == "" || *dataset == "" {
		return errors.New("--config, --collection and --dataset are required")
	}
	if *k < 1 || *k > retrieve.MaxTopK {
		return fmt.Errorf("--k %d: must be from 1 to %d", *k, retrieve.MaxTopK)
	}
	var qs []eval.Question
	var ds *eval.Dataset
	fi, err := os.Stat(*dataset)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if ds, err = eval.Load(*dataset); err != nil {
			return err
		}
		qs = ds.Questions
	} else {
		b, err := os.ReadFile(*dataset)
		if err != nil {
			return err
		}
		if qs, err = eval.ParseQuestions(b); err != nil {
			return fmt.Errorf("%s: %w", *dataset, err)
		}
	}
	lib, stop, err := openLibrary(*cfgPath, os.Stderr)
	if err != nil {
		return err
	}
	defer stop()
	c := lib.Collection(*coll)
	if c == nil || c.C == nil {
		return fmt.Errorf("unknown collection %q (collections: %s)", *coll, strings.Join(lib.Names(), ", "))
	}
	// With a corpus, a hit's document id must name a corpus file: the id
	// itself, or an id ending in "/"+path (ingested from a parent
	// directory).
	toCorpus := func(id string) (string, bool) { return id, true }
	if ds != nil {
		paths := map[string]bool{}
		for _, d := range ds.Documents {
			paths[d.Path] = true
		}
		found := 0
		c.C.Docs(func(d retrieve.DocInfo) bool {
			if _, ok := corpusPath(d.ID, paths); ok {
				found++
			}
			return true
		})
		if found == 0 {
			return fmt.Errorf("collection %q holds none of the dataset's %d documents: ingest %s/corpus first", *coll, len(ds.Documents), *dataset)
		}
		toCorpus = func(id string) (string, bool) { return corpusPath(id, paths) }
	}
	pr := retrieve.Principal{Tenant: *tenant, Groups: splitList(*groups), KeyID: *key}
	rep := &eval.Report{K: *k}
	ctx := context.Background()
	for _, m := range splitList(*modes) {
		mode := retrieve.Mode(m)
		if mode != retrieve.ModeHybrid && mode != retrieve.ModeVector && mode != retrieve.ModeKeyword {
			return fmt.Errorf("--mode %q: want hybrid, vector or keyword", m)
		}
		results := map[string][]eval.Retrieved{}
		var lat []time.Duration
		for _, q := range qs {
			start := time.Now()
			hits, err := c.C.Search(ctx, retrieve.Query{Text: q.Question, Mode: mode, TopK: max(*k, 10), Principal: pr})
			lat = append(lat, time.Since(start))
			if err != nil {
				return fmt.Errorf("question %s: %w", q.ID, err)
			}
			for _, h := range hits {
				p, ok := toCorpus(h.DocID)
				if !ok {
					continue
				}
				r := eval.Retrieved{DocPath: p, Text: h.Text}
				if ds != nil {
					r.Start, r.End = h.Start, h.End
				}
				results[q.ID] = append(results[q.ID], r)
			}
		}
		rep.Add(m, qs, results)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Fprintf(os.Stderr, "%s: %d questions, search p50 %s, p99 %s\n", m, len(qs), lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	}
	fmt.Printf("collection %s, %d questions, k = %d\n\n", *coll, len(qs), *k)
	return rep.WriteTable(os.Stdout)
}

// corpusPath maps a document id to a corpus path: the id itself, or the
// corpus path it ends with after a '/'.
func corpusPath(id string, paths map[string]bool) (string, bool) {
	if paths[id] {
		return id, true
	}
	for i := 0; i < len(id); i++ {
		if id[i] == '/' && paths[id[i+1:]] {
			return id[i+1:], true
		}
	}
	return "", false
}
