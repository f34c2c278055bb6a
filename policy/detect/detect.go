// Package detect finds personal data and credentials in text. It is the
// Go side of the guard's default policies: the Rego library calls these
// detectors through custom builtins (switchyard.pii, switchyard.secrets,
// ...; see policy/builtins.go) and keeps the decisions (modes, reasons,
// tags, redaction) in Rego. Running the detection in Go instead of in Rego
// rules is what keeps an evaluation in microseconds: OPA's evaluator pays
// about a microsecond and several allocations per rule body, and a
// character-level check (Luhn, mod 97, entropy) costs hundreds of them.
//
// Every detector is a cheap single pass over the text (Scan) that gates the
// regular expressions: a pattern runs only when the characters it needs
// are present.
package detect

import (
	"encoding/base64"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Finding is one piece of personal data: its type (email, phone, card,
// iban, ssn, ni, dni, ipv4, ipv6) and the matched text.
type Finding struct {
	Type, Text string
}

// profile is what one pass over the text learns, for the gates.
type profile struct {
	digit, zero, at, plus, dash, dot bool
	colons                           int
	doubleColon                      bool
}

// The characters scan looks at, by class; every other byte is 0 and costs
// one table look-up.
const (
	clsDigit = 1 + iota
	clsZero
	clsAt
	clsPlus
	clsDash
	clsDot
	clsColon
)

var scanClass = func() (t [256]uint8) {
	for c := '1'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	t['0'], t['@'], t['+'], t['-'], t['.'], t[':'] = clsZero, clsAt, clsPlus, clsDash, clsDot, clsColon
	return t
}()

func scan(text string) profile {
	var p profile
	for i := 0; i < len(text); i++ {
		switch scanClass[text[i]] {
		case 0:
		case clsDigit:
			p.digit = true
		case clsZero:
			p.digit, p.zero = true, true
		case clsAt:
			p.at = true
		case clsPlus:
			p.plus = true
		case clsDash:
			p.dash = true
		case clsDot:
			p.dot = true
		case clsColon:
			p.colons++
			if i > 0 && text[i-1] == ':' {
				p.doubleColon = true
			}
		}
	}
	return p
}

// hasDigit reports whether text holds an ASCII digit (IndexByte is
// vectorised: ten of them beat one loop over the bytes).
func hasDigit(text string) bool {
	for c := byte('0'); c <= '9'; c++ {
		if strings.IndexByte(text, c) >= 0 {
			return true
		}
	}
	return false
}

var (
	emailRE  = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	phoneREs = [...]*regexp.Regexp{
		regexp.MustCompile(`\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}`),
		regexp.MustCompile(`\(?\b[2-9]\d{2}\)?[ .-]?\d{3}[ .-]\d{4}\b`),
		regexp.MustCompile(`\b0\d{1,4}(?:[ /-]\d{2,8}){1,4}\b`),
	}
	// cardSeparators strips the spaces and dashes of a card match.
	cardSeparators = strings.NewReplacer(" ", "", "-", "")
	ssnShapeRE     = regexp.MustCompile(`^\d{3}-\d{2}-\d{4}$`) // ssnShape's definition
	cardRE         = regexp.MustCompile(`\b(?:\d[ -]?){12,18}\d\b`)
	iinRE          = regexp.MustCompile(`^(?:4(?:\d{12}|\d{15}|\d{18})|(?:5[1-5]|2[2-7])\d{14}|3[47]\d{13}|3(?:0[0-5]|[68]\d)\d{11,16}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35\d{14,17}|62\d{14,17})$`)
	ibanRE         = regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`)
	ssnRE          = regexp.MustCompile(`\b(\d{3})-(\d{2})-(\d{4})\b`)
	ssnCueRE       = regexp.MustCompile(`(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:is|:|#)?\s*(\d{9})\b`)
	niRE           = regexp.MustCompile(`\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b`)
	dniRE          = regexp.MustCompile(`\b(\d{8})-?([A-Z])\b`)
	ipv4RE         = regexp.MustCompile(`(?i)(\b(?:version|ver|release|build|firmware|rev)\.?:?\s+|==|~=|>=|<=|@|[\w.])?\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(\.?\w)?`)
	ipv6RE         = regexp.MustCompile(`(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}`)
	ipv6FullRE     = regexp.MustCompile(`(?i)^(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$`)
)

// ibanLength is the IBAN length of each country that has one fixed.
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28,
	"CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27,
	"GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
	"NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19,
	"SK": 24, "SM": 27, "TR": 26,
}

// PII returns the personal data found in text, sorted by type and text,
// without duplicates. The rules of each type are documented in
// policy/rego/pii.rego, which decides what to do with them.
func PII(text string) []Finding {
	p := scan(text)
	if !p.digit && !p.at {
		return nil // every detector needs a digit, except email's "@"
	}
	set := map[Finding]struct{}{}
	add := func(typ, s string) { set[Finding{typ, s}] = struct{}{} }

	if p.at {
		emails(text, func(m string) { add("email", m) })
	}
	if !p.digit {
		return sorted(set)
	}

	// High-risk ("strong") findings first: phones inside them are not phones.
	var strong []string
	findAll(cardRE, text, &cardClass, 13, func(m string) {
		d := cardSeparators.Replace(m)
		if iinRE.MatchString(d) && Luhn(d) {
			add("card", m)
			strong = append(strong, m)
		}
	})
	var ibanShaped []string
	windows(text, &upperClass, 2, func(w string) {
		ibans(w, func(m string) {
			ibanShaped = append(ibanShaped, m)
			c := strings.ReplaceAll(m, " ", "")
			if ibanLengthOK(c) && IBANValid(c) {
				add("iban", m)
				strong = append(strong, m)
			}
		})
	})
	if p.dash {
		findAllSubmatch(ssnRE, text, &ssnClass, 9, func(g []string) {
			if ssnValid(g[1], g[2], g[3]) {
				add("ssn", g[0])
				strong = append(strong, g[0])
			}
		})
	}
	if hasRun(text, 9) {
		if lower := strings.ToLower(text); strings.Contains(lower, "ssn") || strings.Contains(lower, "social security") {
			for _, g := range ssnCueRE.FindAllStringSubmatch(text, -1) {
				if n := g[1]; ssnValid(n[0:3], n[3:5], n[5:9]) {
					add("ssn", n)
					strong = append(strong, n)
				}
			}
		}
	}
	windows(text, &upperClass, 6, func(w string) {
		nis(w, func(m, prefix string) {
			switch prefix {
			case "BG", "GB", "NK", "KN", "TN", "NT", "ZZ":
			default:
				add("ni", m)
				strong = append(strong, m)
			}
		})
	})
	windows(text, &dniClass, 8, func(w string) {
		dnis(w, func(m, digits, letter string) {
			if dniValid(digits, letter) {
				add("dni", m)
				strong = append(strong, m)
			}
		})
	})

	// Phones: a set of raw matches (9 digits at least), then those not
	// inside a longer phone match, a strong finding or an IBAN-shaped
	// string.
	raw := map[string]struct{}{}
	keep := func(m string) {
		n := countDigits(m)
		if n < 9 || n > 15 || !phoneLengthOK(m, n) || ssnShape(m) {
			return
		}
		raw[m] = struct{}{}
	}
	windows(text, &phoneClass, 9, func(w string) {
		for i := range phoneREs {
			if (i == 0 && !p.plus) || (i == 2 && !p.zero) {
				continue
			}
			phones(i, w, keep)
		}
	})
	for m := range raw {
		if !phoneCovered(m, raw) && !containedIn(m, strong) && !containedIn(m, ibanShaped) {
			add("phone", m)
		}
	}

	// The IPv4 pattern looks at words before the address (version cues),
	// so it runs on the whole text, when the text holds a dotted quad.
	if p.dot && dottedQuad(text) {
		for _, g := range ipv4RE.FindAllStringSubmatch(text, -1) {
			if g[1] == "" && g[3] == "" && ipv4OK(g[2]) {
				add("ipv4", g[2])
			}
		}
	}
	if p.doubleColon || p.colons >= 7 {
		for _, m := range ipv6RE.FindAllString(text, -1) {
			if ipv6Valid(m) {
				add("ipv6", m)
			}
		}
	}
	return sorted(set)
}

// Character classes of the windowed patterns: every character a match of
// the pattern can hold is in its class, so a match lies inside one maximal
// run of the class, and the pattern runs on each run that could hold a
// match (with one byte of context on either side, for \b) instead of on
// the whole text. The matches are exactly those of the whole text.
func cardChar(c byte) bool  { return c >= '0' && c <= '9' || c == ' ' || c == '-' }
func ssnChar(c byte) bool   { return c >= '0' && c <= '9' || c == '-' }
func upperChar(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == ' ' } // IBAN, NI
func dniChar(c byte) bool   { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '-' }
func phoneChar(c byte) bool {
	return c >= '0' && c <= '9' || c == ' ' || c == '.' || c == '-' || c == '/' || c == '(' || c == ')' || c == '+'
}

// The classes as tables, which windows looks up byte by byte (a table
// look-up, where a call through a func value would not be inlined).
var (
	cardClass  = classTable(cardChar)
	ssnClass   = classTable(ssnChar)
	upperClass = classTable(upperChar)
	dniClass   = classTable(dniChar)
	phoneClass = classTable(phoneChar)
)

func classTable(class func(byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = class(byte(c))
	}
	return t
}

// windows calls f with the text around each maximal run of class that
// holds at least minDigits digits.
func windows(text string, class *[256]bool, minDigits int, f func(w string)) {
	start, digits := -1, 0
	for i := 0; i <= len(text); i++ {
		if i < len(text) && class[text[i]] {
			if start < 0 {
				start, digits = i, 0
			}
			if c := text[i]; c >= '0' && c <= '9' {
				digits++
			}
			continue
		}
		if start >= 0 && digits >= minDigits {
			lo, hi := max(start-1, 0), min(i+1, len(text))
			f(text[lo:hi])
		}
		start = -1
	}
}

func findAll(re *regexp.Regexp, text string, class *[256]bool, minDigits int, f func(m string)) {
	windows(text, class, minDigits, func(w string) {
		for _, m := range re.FindAllString(w, -1) {
			f(m)
		}
	})
}

func findAllSubmatch(re *regexp.Regexp, text string, class *[256]bool, minDigits int, f func(g []string)) {
	windows(text, class, minDigits, func(w string) {
		for _, g := range re.FindAllStringSubmatch(w, -1) {
			f(g)
		}
	})
}

// dottedQuad reports whether text holds digits.digits.digits.digits.
func dottedQuad(text string) bool {
	dots := 0
	for i := 1; i+1 < len(text); i++ {
		switch c := text[i]; {
		case c == '.' && isDigit(text[i-1]) && isDigit(text[i+1]):
			if dots++; dots == 3 {
				return true
			}
		case c != '.' && !isDigit(c):
			dots = 0
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func sorted(set map[Finding]struct{}) []Finding {
	if len(set) == 0 {
		return nil
	}
	out := make([]Finding, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Text < out[j].Text
	})
	return out
}

// hasRun reports whether text holds n digits in a row.
func hasRun(text string, n int) bool {
	run := 0
	for i := 0; i < len(text); i++ {
		if isDigit(text[i]) {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// ssnShape is ssnShapeRE.MatchString(m).
func ssnShape(m string) bool {
	return len(m) == 11 && m[3] == '-' && m[6] == '-' &&
		digitsAt(m, 0, 3) == 3 && digitsAt(m, 4, 2) == 2 && digitsAt(m, 7, 4) == 4
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// phoneLengthOK: national numbers (a leading 0) have at most 12 digits;
// "+" numbers and the "00" international prefix up to 15.
func phoneLengthOK(m string, n int) bool {
	if !strings.HasPrefix(m, "0") || strings.HasPrefix(m, "00") {
		return true
	}
	return n <= 12
}

func phoneCovered(m string, raw map[string]struct{}) bool {
	for o := range raw {
		if o != m && strings.Contains(o, m) {
			return true
		}
	}
	return false
}

// containedIn reports whether m is inside any of in.
func containedIn(m string, in []string) bool {
	return slices.ContainsFunc(in, func(s string) bool { return strings.Contains(s, m) })
}

// Luhn reports whether the decimal string digits passes the Luhn check:
// from the rightmost digit, every second digit is doubled (less 9 when
// above 9); the sum is a multiple of 10. Non-digits fail.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	for i := 0; i < len(digits); i++ {
		c := digits[len(digits)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func ibanLengthOK(c string) bool {
	if len(c) < 2 {
		return false
	}
	if n, ok := ibanLength[c[:2]]; ok {
		return n == len(c)
	}
	return len(c) >= 15 && len(c) <= 34
}

// IBANValid reports whether c (an IBAN without spaces, upper case) has a
// valid ISO 13616 check: the first four characters moved to the end,
// letters mapped to 10..35, the number mod 97 is 1.
func IBANValid(c string) bool {
	if len(c) < 5 {
		return false
	}
	return Mod97(c[4:]+c[:4]) == 1
}

// Mod97 is the remainder of the number spelled by s modulo 97, with the
// letters A..Z standing for 10..35 (as in IBANs). A character that is
// neither a digit nor an upper-case letter gives -1.
func Mod97(s string) int {
	r := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return -1
		}
	}
	return r
}

// ssnValid excludes the never-issued US social security numbers: area
// 000, 666 and 900-999, group 00, serial 0000, and the published samples.
func ssnValid(area, group, serial string) bool {
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return false
	}
	n := area + "-" + group + "-" + serial
	return n != "078-05-1120" && n != "219-09-9999"
}

// dniValid checks a Spanish DNI's letter: "TRWAGMYFPDXBNJZSQVHLCKE"[n % 23].
func dniValid(digits, letter string) bool {
	n := 0
	for i := 0; i < len(digits); i++ {
		n = n*10 + int(digits[i]-'0')
	}
	return letter == string("TRWAGMYFPDXBNJZSQVHLCKE"[n%23])
}

// ipv4OK: octets 0-255 without leading zeros; 0.x, 127.x and 255.x (not
// personal data: unspecified, loopback, netmask-like) are skipped.
func ipv4OK(ip string) bool {
	parts := strings.Split(ip, ".")
	if len(parts) != 4 {
		return false
	}
	for _, o := range parts {
		if len(o) == 0 || len(o) > 3 || (len(o) > 1 && o[0] == '0') {
			return false
		}
		n := 0
		for i := 0; i < len(o); i++ {
			n = n*10 + int(o[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	switch parts[0] {
	case "0", "127", "255":
		return false
	}
	return true
}

// ipv6Valid: the full 8-group form, or a compressed form with exactly one
// "::" and 2 to 7 non-empty groups of at least 4 hex digits in all.
func ipv6Valid(s string) bool {
	if ipv6FullRE.MatchString(s) {
		return true
	}
	if overlapping(s, "::") != 1 || strings.Contains(s, ":::") || strings.HasSuffix(strings.TrimSuffix(s, "::"), ":") {
		return false
	}
	groups, digits := 0, 0
	for _, p := range strings.Split(s, ":") {
		if p != "" {
			groups++
			digits += len(p)
		}
	}
	return groups >= 2 && groups <= 7 && digits >= 4
}

// overlapping counts the occurrences of sub in s, overlapping ones
// included (as Rego's indexof_n does).
func overlapping(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}

// Secret formats, each with cheap literal triggers that gate its pattern.
var known = []struct {
	name     string
	triggers []string
	re       *regexp.Regexp
}{
	{"AWS access key id", []string{"AKIA", "ASIA", "AGPA", "AIDA", "AROA"}, regexp.MustCompile(`\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b`)},
	{"GitHub fine-grained token", []string{"github_pat_"}, regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{22,}`)},
	{"GitHub token", []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`)},
	{"Google API key", []string{"AIza"}, regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`)},
	{"JSON web token", []string{"eyJ"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}`)},
	{"OpenAI-style API key", []string{"sk-"}, regexp.MustCompile(`\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}`)},
	{"PEM private key", []string{"PRIVATE KEY"}, regexp.MustCompile(`-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----`)},
	{"Slack token", []string{"xox"}, regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}`)},
	{"Stripe secret key", []string{"_live_"}, regexp.MustCompile(`\b(?:sk|rk)_live_[A-Za-z0-9]{16,}`)},
}

// HighEntropy is the name of the entropy finding.
const HighEntropy = "high-entropy token (possible credential)"

// EntropyThreshold is the Shannon entropy, in bits per character, from
// which a token counts as key material.
const EntropyThreshold = 4.2

// Secrets returns the kinds of credential found in text (sorted, without
// duplicates): known formats by prefix, PEM private keys, and
// high-entropy tokens (see policy/rego/secrets.rego for the rules).
func Secrets(text string) []string {
	var out []string
	if ContainsAny(text, secretTriggers) {
		for _, k := range known {
			if containsAny(text, k.triggers) && k.re.MatchString(text) {
				out = append(out, k.name)
			}
		}
	}
	for _, tok := range LongTokens(text) {
		if highEntropy(tok) {
			out = append(out, HighEntropy)
			break
		}
	}
	sort.Strings(out)
	return out
}

// containsAny reports whether s contains any of subs.
func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(t string) bool { return strings.Contains(s, t) })
}

// secretTriggers are the triggers of every known format: a text that holds
// none of them (most texts) needs no look at each format's.
var secretTriggers = func() (out []string) {
	for _, k := range known {
		out = append(out, k.triggers...)
	}
	return out
}()

// ContainsAny reports whether s contains any of subs, as strings.Contains
// on each would, in one pass over s instead of one per substring: a
// position is looked at further only when its two bytes begin some
// substring (a 4096-bit table of byte pairs; for pairs of ASCII letters
// it has no collisions).
func ContainsAny(s string, subs []string) bool {
	if len(subs) <= 2 {
		return containsAny(s, subs)
	}
	var table [64]uint64
	var hashBuf [32]uint16
	hashes := hashBuf[:0]
	if len(subs) > len(hashBuf) {
		hashes = make([]uint16, 0, len(subs))
	}
	for _, sub := range subs {
		switch len(sub) {
		case 0:
			return true
		case 1:
			if strings.IndexByte(s, sub[0]) >= 0 {
				return true
			}
			hashes = append(hashes, 0xffff) // never a pair's
			continue
		}
		h := pairHash(sub[0], sub[1])
		table[h>>6] |= 1 << (h & 63)
		hashes = append(hashes, h)
	}
	for i := 0; i+1 < len(s); i++ {
		h := pairHash(s[i], s[i+1])
		if table[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for j, sub := range subs {
			if hashes[j] == h && strings.HasPrefix(s[i:], sub) {
				return true
			}
		}
	}
	return false
}

// pairHash is a byte pair's bit in ContainsAny's table (12 bits).
func pairHash(a, b byte) uint16 { return (uint16(a)<<5 ^ uint16(b)) & 4095 }

// LongTokens returns the runs of 24 or more base64 / url-safe characters
// ([A-Za-z0-9+/=_-]), when the text holds a digit (base64 of 18+ bytes
// virtually always has one, and the entropy check requires one). It is a
// single pass, no regular expression.
func LongTokens(text string) []string {
	if !hasDigit(text) {
		return nil
	}
	var out []string
	start := -1
	for i := 0; i <= len(text); i++ {
		if i < len(text) && tokenChar(text[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start >= 24 {
			out = append(out, text[start:i])
		}
		start = -1
	}
	return out
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-'
}

func highEntropy(tok string) bool {
	if len(tok) < 32 {
		return false
	}
	var lower, upper, digit, nonHex bool
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
			nonHex = nonHex || c > 'f'
		case c >= 'A' && c <= 'Z':
			upper = true
			nonHex = nonHex || c > 'F'
		case c >= '0' && c <= '9':
			digit = true
		case c != '-':
			nonHex = true
		}
	}
	if !nonHex || !lower || !upper || !digit {
		return false
	}
	if _, ok := DecodedText(tok); ok {
		return false
	}
	return Entropy(tok) >= EntropyThreshold
}

// DecodedText decodes tok as standard base64 and returns the result when
// it is printable ASCII text (tabs and line breaks allowed).
func DecodedText(tok string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 {
		return "", false
	}
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\r' && c != '\n' {
			return "", false
		}
	}
	return string(b), true
}

// Entropy is the Shannon entropy of s in bits per character (of its
// bytes): log2(n) - (1/n) * sum over each byte value of k * log2(k).
func Entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	w := 0.0
	for _, k := range counts {
		if k > 1 {
			w += float64(k) * math.Log2(float64(k))
		}
	}
	return math.Log2(n) - w/n
}
