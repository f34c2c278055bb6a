package config

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Collection is a document collection for retrieval (docs/retrieval.md):
// searched by the retrieval stage, and an OpenAI vector store of the same
// id, filled through the Files and Vector Stores APIs, by `switchyard
// ingest`, or from Sources at start.
type Collection struct {
	// Name identifies the collection: the retrieval stage's collection
	// and its vector store id. 1 to 64 letters, digits, '-', '_' or '.',
	// starting with a letter or digit.
	Name string `yaml:"name"`
	// Embedder makes the chunks' vectors: builtin (default: the gateway's
	// own embedder, in process, no model needed) or the name of a model
	// pool that serves embeddings, called through the gateway's own
	// routing and dispatch (and batched when the pool batches).
	Embedder string `yaml:"embedder,omitempty"`
	// Dimensions is the vectors' length: for builtin, default 512 (64 to
	// 4096); for a model pool it is required and every answer must have
	// it.
	Dimensions int `yaml:"dimensions,omitempty"`
	// Chunking bounds chunks (cut along headings and paragraphs).
	Chunking Chunking `yaml:"chunking,omitempty"`
	// Store is where the documents live: local (default: files in
	// data_dir/collections/<name>, one process at a time) or postgres
	// (store.postgres; shared by replicas, which keep their in-process
	// indexes in step through LISTEN/NOTIFY).
	Store string `yaml:"store,omitempty"`
	// MaxFileSize is the largest document accepted (an upload, a file
	// attached, a path ingested). Default 16MiB, at most 1GiB.
	MaxFileSize Size `yaml:"max_file_size,omitempty"`
	// Sources are files ingested when the collection opens (at start and
	// at each reload): a document per file, its id the path relative to
	// the config's directory; unchanged files are skipped, and documents
	// of files no longer there are removed.
	Sources []Source `yaml:"sources,omitempty"`
	// Line is the collection's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Chunking bounds a collection's chunks.
type Chunking struct {
	// MaxTokens is the largest chunk, in estimated tokens (4 bytes each).
	// Default 256, 16 to 8192.
	MaxTokens int `yaml:"max_tokens,omitempty"`
	// OverlapTokens is how much of a chunk's end the next chunk of the
	// same section repeats. Default 32, at most max_tokens/2; -1 for none.
	OverlapTokens int `yaml:"overlap_tokens,omitempty"`
}

// Source is a set of files ingested into a collection when it opens.
type Source struct {
	// Path is a file, a directory (its .txt, .md, .markdown, .html, .htm
	// and .jsonl files, recursively) or a glob (path.Match syntax in its
	// last element), relative to the config file's directory.
	Path string `yaml:"path"`
	// ACL says who may see these documents; empty lists admit everyone.
	ACL SourceACL `yaml:"acl,omitempty"`
	// Metadata are attributes the documents carry (for filters).
	Metadata map[string]string `yaml:"metadata,omitempty"`
}

// SourceACL restricts who sees a source's documents: each non-empty list
// must admit the caller (its tenant, one of its groups — the key's
// metadata "groups", comma-separated — or its key id).
type SourceACL struct {
	Tenants []string `yaml:"tenants,omitempty"`
	Groups  []string `yaml:"groups,omitempty"`
	Keys    []string `yaml:"keys,omitempty"`
}

// Collection values.
const (
	EmbedderBuiltin        = "builtin"
	CollectionStoreLocal   = "local"
	CollectionStorePG      = "postgres"
	DefaultBuiltinDims     = 512
	DefaultChunkTokens     = 256
	DefaultChunkOverlap    = 32
	DefaultMaxFileSize     = 16 << 20
	MaxCollectionFileSize  = 1 << 30
	maxCollectionNameBytes = 64
)

// PathOf resolves a config-relative path against the config's directory.
func (c *Config) PathOf(p string) string {
	if filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// Collection returns the collection named name, or nil.
func (c *Config) Collection(name string) *Collection {
	for i := range c.Collections {
		if c.Collections[i].Name == name {
			return &c.Collections[i]
		}
	}
	return nil
}

func (c *Config) collectionDefaults() {
	for i := range c.Collections {
		col := &c.Collections[i]
		p := indexPath("collections", i)
		c.defString(p+".embedder", &col.Embedder, EmbedderBuiltin)
		if col.Embedder == EmbedderBuiltin {
			c.defInt(p+".dimensions", &col.Dimensions, DefaultBuiltinDims)
		}
		c.defInt(p+".chunking.max_tokens", &col.Chunking.MaxTokens, DefaultChunkTokens)
		c.defInt(p+".chunking.overlap_tokens", &col.Chunking.OverlapTokens, min(DefaultChunkOverlap, col.Chunking.MaxTokens/2))
		c.defString(p+".store", &col.Store, CollectionStoreLocal)
		c.defSize(p+".max_file_size", &col.MaxFileSize, DefaultMaxFileSize)
	}
}

// collections checks the collections against the pools.
func (v *validator) collections(pools map[string]int, poolsIncomplete bool) {
	seen := map[string]string{}
	for i := range v.c.Collections {
		col := &v.c.Collections[i]
		p := indexPath("collections", i)
		if prev, dup := seen[col.Name]; dup {
			v.add(p+".name", "duplicate collection name %q%s", col.Name, v.lineOf(prev))
		} else if msg := collectionNameProblem(col.Name); msg != "" {
			v.add(p+".name", "%s", msg)
		} else {
			seen[col.Name] = p + ".name"
		}
		switch {
		case col.Embedder == EmbedderBuiltin:
			if col.Dimensions < 64 || col.Dimensions > 4096 {
				v.add(p+".dimensions", "must be from 64 to 4096 for the builtin embedder, got %d", col.Dimensions)
			}
		default:
			if _, ok := pools[col.Embedder]; !ok && !poolsIncomplete {
				v.add(p+".embedder", "unknown embedder %q: want builtin or the name of a model pool", col.Embedder)
			}
			if col.Dimensions < 1 || col.Dimensions > 65536 {
				v.add(p+".dimensions", "required with a model pool embedder: the length of its vectors (1 to 65536), got %d", col.Dimensions)
			}
		}
		ch := col.Chunking
		if ch.MaxTokens < 16 || ch.MaxTokens > 8192 {
			v.add(p+".chunking.max_tokens", "must be from 16 to 8192, got %d", ch.MaxTokens)
		} else if ch.OverlapTokens < -1 || ch.OverlapTokens > ch.MaxTokens/2 {
			v.add(p+".chunking.overlap_tokens", "must be from -1 (none) to max_tokens/2 (%d), got %d", ch.MaxTokens/2, ch.OverlapTokens)
		}
		switch col.Store {
		case CollectionStoreLocal:
		case CollectionStorePG:
			if v.c.Store.Postgres.DSN == "" {
				v.add(p+".store", "postgres needs store.postgres.dsn")
			}
		default:
			v.add(p+".store", "unknown store %q (want local or postgres)", col.Store)
		}
		if col.MaxFileSize <= 0 || col.MaxFileSize > MaxCollectionFileSize {
			v.add(p+".max_file_size", "must be from 1 byte to 1GiB, got %d bytes", int64(col.MaxFileSize))
		}
		for j, s := range col.Sources {
			sp := indexPath(p+".sources", j)
			if strings.TrimSpace(s.Path) == "" {
				v.add(sp+".path", "required: a file, a directory or a glob, relative to the config file")
			} else if _, err := filepath.Match(filepath.Base(s.Path), ""); err != nil {
				v.add(sp+".path", "bad glob %q: %v", s.Path, err)
			}
			for k, val := range s.Metadata {
				if k == "" || len(k) > 256 || len(val) > 4096 {
					v.add(sp+".metadata", "keys must be 1 to 256 bytes and values at most 4096 bytes (key %q)", k)
				}
			}
		}
	}
}

// collectionNameProblem says what is wrong with a collection name, or "".
func collectionNameProblem(n string) string {
	if n == "" {
		return "required: the collection's name"
	}
	if len(n) > maxCollectionNameBytes {
		return "must be at most 64 bytes"
	}
	for i := 0; i < len(n); i++ {
		b := n[i]
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || i > 0 && (b == '-' || b == '_' || b == '.')
		if !ok {
			return "must be letters, digits, '-', '_' or '.', starting with a letter or digit; got " + strconv.Quote(n)
		}
	}
	return ""
}
