package retrieval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"switchyard/gateway/config"
	"switchyard/internal/retrieve"
)

// IngestOptions are the settings of Library.Ingest (`switchyard ingest`).
type IngestOptions struct {
	// Base is the directory document ids are relative to (the working
	// directory of the command); "" is ".".
	Base string
	// ACL and Metadata apply to every document.
	ACL      retrieve.ACL
	Metadata map[string]any
	// Progress, if not nil, is called after each file.
	Progress func(IngestProgress)
}

// IngestProgress is the state after one file.
type IngestProgress struct {
	Done, Files int
	Path        string
	Chunks      int  // the file's chunks (0 when unchanged or failed)
	Unchanged   bool // skipped: the collection holds it as it is
	Err         error
}

// IngestSummary is the outcome of Library.Ingest.
type IngestSummary struct {
	Files, Added, Unchanged, Failed, Chunks int
	Bytes                                   int64
	Took                                    time.Duration
	// Failures lists the files not added, with why; each failed file is
	// left as it was in the collection (an Add is atomic).
	Failures []IngestFailure
}

// IngestFailure is a file that was not added.
type IngestFailure struct {
	Path string
	Err  error
}

// Ingest adds the files at paths (files, directories of .txt, .md,
// .markdown, .html, .htm and .jsonl files, or globs) to the collection:
// one document per file, its id the path relative to o.Base with '/'. An
// unchanged file (same content, ACL and metadata) is skipped; a bad file
// is reported and the others go on. The error is for what stops the run:
// an unknown collection, a path that does not exist, ctx ending.
func (l *Library) Ingest(ctx context.Context, collection string, paths []string, o IngestOptions) (IngestSummary, error) {
	start := time.Now()
	var sum IngestSummary
	c := l.Collection(collection)
	if c == nil || c.C == nil {
		return sum, fmt.Errorf("unknown collection %q (collections: %v)", collection, l.Names())
	}
	base := o.Base
	if base == "" {
		base = "."
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return sum, err
	}
	srcs := make([]config.Source, len(paths))
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return sum, err
		}
		srcs[i] = config.Source{Path: abs}
	}
	files, err := expandSources(base, srcs)
	if err != nil {
		return sum, err
	}
	meta, _ := json.Marshal(struct {
		A retrieve.ACL
		M map[string]any
	}{o.ACL, o.Metadata})
	sum.Files = len(files)
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		p := IngestProgress{Done: i + 1, Files: len(files), Path: f.path}
		b, err := readLimited(f.path, c.MaxSize)
		if err == nil {
			h := sha256.New()
			h.Write(b)
			h.Write(meta)
			d := retrieve.Document{ID: f.id, Title: titleOf(f.id), Format: retrieve.FormatOf(f.path), Content: b,
				Metadata: o.Metadata, ACL: o.ACL, Version: ingestVersion + hex.EncodeToString(h.Sum(nil)[:16])}
			if old, ok := c.C.Doc(d.ID); ok && old.Version == d.Version {
				p.Unchanged = true
			} else {
				p.Chunks, err = c.C.Add(ctx, d)
			}
		}
		switch {
		case err != nil:
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return sum, err
			}
			p.Err = err
			sum.Failed++
			sum.Failures = append(sum.Failures, IngestFailure{Path: f.path, Err: err})
		case p.Unchanged:
			sum.Unchanged++
		default:
			sum.Added++
			sum.Chunks += p.Chunks
			sum.Bytes += int64(len(b))
		}
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	sum.Took = time.Since(start)
	return sum, nil
}
