package embed

import (
	"unicode"
	"unicode/utf8"
)

// maxWord bounds the bytes of one word; longer runs of letters are cut into
// several words, so a pathological input costs linear time and no memory.
const maxWord = 64

// Scripts of a word, for Guard's language check.
const (
	scriptNone uint8 = iota
	scriptLatin
	scriptCyrillic
	scriptGreek
	scriptArabic
	scriptHebrew
	scriptIndic
	scriptCJK
	scriptHangul
	scriptThai
	scriptOther
	numScripts
)

// latinFold maps U+00C0..U+017F to a lowercase ASCII base letter (0: none).
var latinFold [0x180 - 0xC0]byte

func init() {
	// Each group: base letter, then the precomposed letters that fold to it.
	groups := []string{
		"aÀÁÂÃÄÅàáâãäåĀāĂăĄą", "cÇçĆćĈĉĊċČč", "dĎďĐđ", "eÈÉÊËèéêëĒēĔĕĖėĘęĚě",
		"gĜĝĞğĠġĢģ", "hĤĥĦħ", "iÌÍÎÏìíîïĨĩĪīĬĭĮįİı", "jĴĵ", "kĶķ", "lĹĺĻļĽľĿŀŁł",
		"nÑñŃńŅņŇňŉ", "oÒÓÔÕÖØòóôõöøŌōŎŏŐő", "rŔŕŖŗŘř", "sŚśŜŝŞşŠš", "tŢţŤťŦŧ",
		"uÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲų", "wŴŵ", "yÝýÿŶŷŸ", "zŹźŻżŽž",
	}
	for _, g := range groups {
		base := g[0]
		for _, r := range g[1:] {
			latinFold[r-0xC0] = base
		}
	}
}

// appendFold writes the folded form of r into dst (which must have room for
// 4 bytes) and returns the number of bytes written: lowercase, Latin accents
// removed, compatibility forms (full-width letters, ligatures, superscript
// digits, micro sign) replaced by their plain letters, combining marks
// dropped. It is a small, allocation-free subset of NFKC plus case and accent
// folding.
func appendFold(dst []byte, r rune) int {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		dst[0] = byte(r)
		return 1
	}
	switch {
	case r >= 0xC0 && r < 0x180:
		if b := latinFold[r-0xC0]; b != 0 {
			dst[0] = b
			return 1
		}
		switch r {
		case 'ß':
			dst[0], dst[1] = 's', 's'
			return 2
		case 'æ', 'Æ':
			dst[0], dst[1] = 'a', 'e'
			return 2
		case 'œ', 'Œ':
			dst[0], dst[1] = 'o', 'e'
			return 2
		case 'þ', 'Þ':
			dst[0], dst[1] = 't', 'h'
			return 2
		case 'ð', 'Ð':
			dst[0] = 'd'
			return 1
		}
	case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
		return appendFold(dst, r-0xFEE0)
	case r >= 0xFB00 && r <= 0xFB06: // Latin ligatures
		lig := [...]string{"ff", "fi", "fl", "ffi", "ffl", "st", "st"}[r-0xFB00]
		return copy(dst, lig)
	case r == '¹':
		dst[0] = '1'
		return 1
	case r == '²' || r == '³':
		dst[0] = byte('0' + r - 0xB0)
		return 1
	case r >= 0x2070 && r <= 0x2079 && r != 0x2071 && r != 0x2072 && r != 0x2073:
		dst[0] = byte('0' + r - 0x2070)
		return 1
	case r == 0xB5: // micro sign
		r = 'μ'
	case unicode.Is(unicode.Mn, r):
		return 0
	}
	return utf8.EncodeRune(dst, unicode.ToLower(r))
}

func scriptOf(r rune) uint8 {
	switch {
	case r < 0x250:
		return scriptLatin
	case unicode.Is(unicode.Latin, r):
		return scriptLatin
	case unicode.Is(unicode.Cyrillic, r):
		return scriptCyrillic
	case unicode.Is(unicode.Greek, r):
		return scriptGreek
	case unicode.Is(unicode.Arabic, r):
		return scriptArabic
	case unicode.Is(unicode.Hebrew, r):
		return scriptHebrew
	case r >= 0x0900 && r <= 0x0DFF:
		return scriptIndic
	case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r):
		return scriptCJK
	case unicode.Is(unicode.Hangul, r):
		return scriptHangul
	case unicode.Is(unicode.Thai, r):
		return scriptThai
	}
	return scriptOther
}

// token is one normalized word. raw and form are views into the tokenizer's
// buffers, valid until the next call to next.
type token struct {
	raw    []byte // folded word as written
	form   []byte // canonical form: alias applied, stemmed
	hash   uint64 // fnv64 of form
	class  uint8  // exact class of form (classNone for plain words)
	stop   bool   // function word or filler
	script uint8  // script of the first letter
	langs  uint8  // function word of these languages (from raw)
	upper  bool   // the word was written with an initial capital
	first  bool   // the first word of the text
	inv    bool   // preceded by an inverted question or exclamation mark (Spanish)
}

// tokenizer splits a text into normalized tokens without allocating.
type tokenizer struct {
	s       string
	i       int
	count   int  // tokens produced
	prevNum bool // previous token was a number
	prevTok uint64
	pendNot bool // emit "not" next (from a n't contraction)
	inv     bool
	rawBuf  [maxWord + 8]byte
	formBuf [maxWord + 8]byte
	tok     token
}

func (t *tokenizer) reset(s string) {
	t.s, t.i, t.count, t.prevNum, t.prevTok, t.pendNot, t.inv = s, 0, 0, false, 0, false, false
}

var (
	hashNot    = fnvString("not")
	monthPrevs = map[uint64]bool{}
	hashMay    = fnvString("may")
	hashAM     = fnvString("am")
	hashPM     = fnvString("pm")
	hashST     = fnvString("st")
	hashND     = fnvString("nd")
	hashRD     = fnvString("rd")
	hashTH     = fnvString("th")
)

func init() {
	for _, w := range []string{"in", "of", "on", "since", "until", "by", "during", "early", "late", "mid", "next", "last", "this", "from", "before", "after"} {
		monthPrevs[fnvString(w)] = true
	}
}

// isWordRune reports whether r continues a word; digits and letters are
// told apart so that "16px" becomes "16" "px".
func runeKind(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			return 1
		case '0' <= r && r <= '9':
			return 2
		case r == '%' || r == '$':
			return 3
		}
		return 0
	case r >= 0xFF10 && r <= 0xFF19, r == '¹', r == '²', r == '³':
		return 2
	case unicode.IsLetter(r) || unicode.Is(unicode.Mn, r) || r == 0xB5:
		return 1
	case unicode.IsDigit(r):
		return 2
	case r == '°':
		return 4
	case r == '€' || r == '£' || r == '¥':
		return 3
	}
	return 0
}

func isApostrophe(r rune) bool { return r == '\'' || r == '’' || r == 'ʼ' }

// next returns the next token, or false at the end of the text.
func (t *tokenizer) next() (*token, bool) {
	if t.pendNot {
		t.pendNot = false
		n := copy(t.rawBuf[:], "not")
		copy(t.formBuf[:], "not")
		return t.finish(n, n, hashNot, false), true
	}
	s := t.s
	// Skip separators.
	var kind int
	for t.i < len(s) {
		r, size := rune(s[t.i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[t.i:])
		}
		kind = runeKind(r)
		if kind != 0 {
			break
		}
		if r == '¿' || r == '¡' {
			t.inv = true
		}
		t.i += size
	}
	if t.i >= len(s) {
		return nil, false
	}
	n := 0
	upper := false
	script := scriptNone
	switch kind {
	case 3: // currency or percent sign: a one-rune token
		r, size := utf8.DecodeRuneInString(s[t.i:])
		n = utf8.EncodeRune(t.rawBuf[:], r)
		t.i += size
	case 2: // number: digits, one decimal point, thousands separators
		dot := false
		for t.i < len(s) && n < maxWord {
			r, size := utf8.DecodeRuneInString(s[t.i:])
			if runeKind(r) == 2 {
				n += appendFold(t.rawBuf[n:], r)
				t.i += size
				continue
			}
			if r == '.' && !dot && t.i+1 < len(s) && isDigit(s[t.i+1]) {
				dot = true
				t.rawBuf[n] = '.'
				n++
				t.i++
				continue
			}
			if r == ',' && !dot && thousands(s[t.i+1:]) {
				t.i++
				continue
			}
			break
		}
		// Strip leading zeros: "07" and "7" are the same number.
		z := 0
		for z < n-1 && t.rawBuf[z] == '0' && t.rawBuf[z+1] != '.' {
			z++
		}
		n = copy(t.rawBuf[:], t.rawBuf[z:n])
	default: // word: letters (and a leading degree sign)
		first := true
		for t.i < len(s) && n < maxWord {
			if c := s[t.i]; c < utf8.RuneSelf && isASCIILetter(c) { // fast path
				if first {
					upper, script = c <= 'Z', scriptLatin
					first = false
				}
				t.rawBuf[n] = c | 0x20
				n++
				t.i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[t.i:])
			k := runeKind(r)
			if k == 4 && !first {
				break
			}
			if k != 1 && k != 4 {
				if isApostrophe(r) && n > 0 {
					t.contraction(size, &n)
				}
				break
			}
			if first {
				upper = unicode.IsUpper(r)
				if k == 1 {
					script = scriptOf(r)
				}
			} else if script == scriptNone && k == 1 {
				script = scriptOf(r)
			}
			first = false
			n += appendFold(t.rawBuf[n:], r)
			t.i += size
		}
		if n == 0 { // only combining marks
			return t.next()
		}
	}
	return t.canon(n, kind, upper, script), true
}

// contraction handles an apostrophe after the letters in rawBuf[:*n]. It
// consumes English contraction suffixes ('s 've 're 'll 'd 'm, n't) and
// reports true; for anything else ("l'eau") it consumes the apostrophe only
// and the word ends there.
func (t *tokenizer) contraction(size int, n *int) {
	s := t.s
	j := t.i + size
	k := j
	for k < len(s) && k-j < 3 && isASCIILetter(s[k]) {
		k++
	}
	if k < len(s) {
		if r, _ := utf8.DecodeRuneInString(s[k:]); runeKind(r) == 1 {
			t.i = j // not a contraction: split the word at the apostrophe
			return
		}
	}
	switch lower(s[j:k]) {
	case "s", "ve", "re", "ll", "d", "m":
		t.i = k
	case "t":
		t.i = k
		if *n > 1 && t.rawBuf[*n-1] == 'n' {
			*n--
			switch string(t.rawBuf[:*n]) {
			case "ca":
				*n = copy(t.rawBuf[:], "can")
			case "wo":
				*n = copy(t.rawBuf[:], "will")
			case "sha":
				*n = copy(t.rawBuf[:], "shall")
			case "ai":
				*n = copy(t.rawBuf[:], "is")
			}
			t.pendNot = true
		}
	default:
		t.i = j
	}
}

func isASCIILetter(c byte) bool { c |= 0x20; return 'a' <= c && c <= 'z' }

func lower(s string) string {
	switch s {
	case "S":
		return "s"
	case "T":
		return "t"
	case "D":
		return "d"
	case "M":
		return "m"
	case "VE", "Ve":
		return "ve"
	case "RE", "Re":
		return "re"
	case "LL", "Ll":
		return "ll"
	}
	return s
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) && c != '.' {
			return false
		}
	}
	return len(b) > 0 && isDigit(b[0])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// thousands reports whether s starts with exactly three digits ("200,000").
func thousands(s string) bool {
	return len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && (len(s) == 3 || !isDigit(s[3]))
}

// canon fills t.tok from rawBuf[:n]: alias, stemming, lexicon lookups.
func (t *tokenizer) canon(n, kind int, upper bool, script uint8) *token {
	raw := t.rawBuf[:n]
	rh := fnvBytes(raw)
	e := lexicon.get(rh)
	var langs uint8
	stop := false
	if e != nil {
		langs = e.langs
		stop = e.stop
	}
	m := 0
	if kind == 2 {
		m = copy(t.formBuf[:], raw)
	} else {
		if e != nil && e.alias != "" {
			m = copy(t.formBuf[:], e.alias)
			if e.neg {
				t.pendNot = true
			}
		} else {
			m = copy(t.formBuf[:], raw)
		}
		m = stem(t.formBuf[:m])
		if e == nil || e.alias == "" {
			// An alias of the stem: "dicts" -> "dict" -> "dictionary".
			if se := lexicon.get(fnvBytes(t.formBuf[:m])); se != nil && se.alias != "" && !se.neg {
				m = stem(t.formBuf[:copy(t.formBuf[:], se.alias)])
			}
		}
	}
	tok := t.finish(n, m, fnvBytes(t.formBuf[:m]), stop)
	tok.langs, tok.upper, tok.script = langs, upper, script
	if kind == 2 || allDigits(tok.form) {
		tok.class, tok.stop = classNumber, false
		tok.script = scriptNone
	}
	// Context rules for ambiguous words.
	switch {
	case tok.class == classNumber:
	case (tok.hash == hashAM || tok.hash == hashPM) && t.prevNum:
		tok.class, tok.stop = classUnit, false
	case tok.hash == hashMay:
		if t.prevNum || (upper && !tok.first) || monthPrevs[t.prevTok] {
			tok.class, tok.stop = classDate, false
		}
	case t.prevNum && (tok.hash == hashST || tok.hash == hashND || tok.hash == hashRD || tok.hash == hashTH):
		tok.stop = true
	}
	t.prevNum = tok.class == classNumber
	t.prevTok = rh
	return tok
}

func (t *tokenizer) finish(n, m int, h uint64, stop bool) *token {
	t.count++
	tok := &t.tok
	*tok = token{raw: t.rawBuf[:n], form: t.formBuf[:m], hash: h, stop: stop, script: scriptLatin, inv: t.inv, first: t.count == 1}
	if e := lexicon.get(h); e != nil {
		tok.class = e.class
		if e.stop && e.class == classNone {
			tok.stop = true
		}
	}
	if tok.class != classNone {
		tok.stop = false
	}
	return tok
}

// stem strips common English inflections from a lowercase ASCII word in
// place and returns its new length: plural -s/-es/-ies, -ing, -ed, and a
// final -e, so that "matches", "matched", "matching" and "match" meet, as do
// "decline" and "declined". Non-ASCII words are left alone.
func stem(w []byte) int {
	n := len(w)
	for _, c := range w {
		if c < 'a' || c > 'z' {
			return n
		}
	}
	if n < 4 {
		return n
	}
	switch {
	case hasSuffix(w[:n], "ies") && n > 4:
		w[n-3] = 'y'
		n -= 2
	case hasSuffix(w[:n], "sses"), hasSuffix(w[:n], "ches"), hasSuffix(w[:n], "shes"), hasSuffix(w[:n], "xes"), hasSuffix(w[:n], "zes"):
		n -= 2
	case w[n-1] == 's' && !hasSuffix(w[:n], "ss") && !hasSuffix(w[:n], "us") && !hasSuffix(w[:n], "is"):
		n--
	}
	switch {
	case hasSuffix(w[:n], "ing") && n-3 >= 3 && hasVowel(w[:n-3]):
		n = undouble(w, n-3)
	case hasSuffix(w[:n], "ed") && n-2 >= 3 && hasVowel(w[:n-2]):
		n = undouble(w, n-2)
		if w[n-1] == 'i' {
			w[n-1] = 'y'
		}
	}
	if hasSuffix(w[:n], "tion") && n-3 >= 4 {
		n -= 3 // "concatenation" meets "concatenate"
	}
	if n > 3 && w[n-1] == 'e' {
		n--
	}
	return n
}

func hasSuffix(w []byte, s string) bool {
	return len(w) >= len(s) && string(w[len(w)-len(s):]) == s
}

func hasVowel(w []byte) bool {
	for _, c := range w {
		switch c {
		case 'a', 'e', 'i', 'o', 'u', 'y':
			return true
		}
	}
	return false
}

// undouble drops one of two equal final consonants ("stopp" -> "stop"),
// except l, s and z ("install", "pass", "buzz").
func undouble(w []byte, n int) int {
	if n >= 2 && w[n-1] == w[n-2] {
		switch w[n-1] {
		case 'a', 'e', 'i', 'o', 'u', 'l', 's', 'z':
		default:
			return n - 1
		}
	}
	return n
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finalizer; it spreads FNV's weak low bits before a
// hash picks a bucket and a sign.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
