package retrieve

import (
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

// termFreqs returns the terms of s with their counts, and the number of
// terms (the document length of BM25).
func termFreqs(s string) (map[string]uint32, int) {
	var t termScanner
	t.reset(s)
	m := make(map[string]uint32)
	n := 0
	for {
		b, ok := t.next()
		if !ok {
			return m, n
		}
		m[string(b)]++
		n++
	}
}

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
