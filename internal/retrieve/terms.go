package retrieve

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// BytesPerToken is the token estimate of the chunker: a token is 4 bytes
// of UTF-8 text, rounded up (OpenAI's rule of thumb for English; it
// over-counts code and under-counts CJK, which is the safe side for a
// context budget only for the former). It is additive over pieces of text
// and needs no vocabulary, so every bound is a byte bound.
const BytesPerToken = 4

// EstimateTokens returns the chunker's token estimate of s.
func EstimateTokens(s string) int { return (len(s) + BytesPerToken - 1) / BytesPerToken }

// maxTerm is the longest term the keyword index keeps, in bytes; longer
// runs (hashes, base64) are cut to it.
const maxTerm = 64

// termScanner splits text into keyword-index terms: maximal runs of Unicode
// letters and digits, lowercased (simple case folding), at most maxTerm
// bytes. There is no stemming and no stop list: BM25's idf already weighs
// common words down, and exact terms keep identifiers and codes findable.
type termScanner struct {
	s   string
	i   int
	buf []byte
}

func (t *termScanner) reset(s string) { t.s, t.i = s, 0 }

// next returns the next term, valid until the following call, or false.
func (t *termScanner) next() ([]byte, bool) {
	s := t.s
	t.buf = t.buf[:0]
	for t.i < len(s) {
		c := s[t.i]
		if c < utf8.RuneSelf {
			t.i++
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				if len(t.buf) > 0 {
					return t.buf, true
				}
				continue
			}
			if len(t.buf) < maxTerm {
				t.buf = append(t.buf, c)
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[t.i:])
		t.i += n
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) {
			if len(t.buf) > 0 {
				return t.buf, true
			}
			continue
		}
		r = unicode.ToLower(r)
		if len(t.buf)+utf8.RuneLen(r) <= maxTerm {
			t.buf = utf8.AppendRune(t.buf, r)
		}
	}
	return t.buf, len(t.buf) > 0
}

// termTF is a term of a chunk with its count.
type termTF struct {
	term string
	tf   uint32
}

// chunkTerms returns the distinct terms of s with their counts, and the
// number of terms (the document length of BM25). The terms share one
// allocation; apply clones those that become new keys of a postings map,
// so that the chunk's buffer is not kept alive by them.
func chunkTerms(s string) ([]termTF, int) {
	var t termScanner
	t.reset(s)
	buf := make([]byte, 0, len(s))
	ends := make([]int32, 0, len(s)/6+1)
	for {
		b, ok := t.next()
		if !ok {
			break
		}
		buf = append(buf, b...)
		ends = append(ends, int32(len(buf)))
	}
	all := string(buf)
	idx := termIdxPool.Get().(map[string]int32)
	out := make([]termTF, 0, len(ends)/2+1)
	start := int32(0)
	for _, e := range ends {
		x := all[start:e]
		start = e
		if i, ok := idx[x]; ok {
			out[i].tf++
			continue
		}
		idx[x] = int32(len(out))
		out = append(out, termTF{x, 1})
	}
	clear(idx)
	termIdxPool.Put(idx)
	return out, len(ends)
}

// termIdxPool holds the scratch maps of chunkTerms.
var termIdxPool = sync.Pool{New: func() any { return make(map[string]int32, 256) }}

// queryTerms returns the distinct terms of s, in order of first appearance.
func queryTerms(s string) []string {
	var t termScanner
	t.reset(s)
	var out []string
	for {
		b, ok := t.next()
		if !ok {
			return out
		}
		dup := false
		for _, x := range out {
			if x == string(b) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, string(b))
		}
		if len(out) >= maxQueryTerms {
			return out
		}
	}
}

// maxQueryTerms bounds the work of one keyword search.
const maxQueryTerms = 64
