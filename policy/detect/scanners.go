package detect

import "strings"

// Hand-written matchers for the hottest patterns of PII. Each one finds
// exactly what its regular expression's FindAllString finds (leftmost
// first, then the next match from the end of the previous one, as Go's
// regexp does): the choices of the pattern are tried in the order a
// backtracking search tries them, so the first success is the regexp's
// match. The patterns stay in detect.go, as the definition: FuzzPII
// compares PII with them run on the whole text.
//
// On the PII benchmark text (a phone number, an email and digits in every
// line) the regexps took about 70% of PII's time, mostly their fixed cost
// per call on each short window.

// wordChar is \b's notion of a word character (ASCII only, as in Go's
// regexp: a byte of a multi-byte rune, or of invalid UTF-8, is not one).
func wordChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// boundaryBefore is \b at i when t[i] is a word character.
func boundaryBefore(t string, i int) bool { return i == 0 || !wordChar(t[i-1]) }

// boundaryAfter is \b at i when t[i-1] is a word character.
func boundaryAfter(t string, i int) bool { return i == len(t) || !wordChar(t[i]) }

// digitsAt is the number of ASCII digits from t[i], at most limit.
func digitsAt(t string, i, limit int) int {
	n := 0
	for n < limit && i+n < len(t) && isDigit(t[i+n]) {
		n++
	}
	return n
}

// Email: [A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}
//
// The local part cannot hold '@', so a match's '@' is the first one after
// its start and its local part is the run of local characters before that
// '@' (from the end of the previous match at the earliest). The domain's
// first label is the whole run of label characters (a shorter one is
// followed by a label character, which neither `\.` can take); the starred
// labels are each a whole label too, and the search settles on the last
// label, after the first, that starts with two letters: the match ends
// after its letters.
func emails(t string, f func(m string)) {
	pos := 0
	for a := 0; a < len(t); a++ {
		i := strings.IndexByte(t[a:], '@')
		if i < 0 {
			return
		}
		a += i
		ls := a
		for ls > pos && emailLocal[t[ls-1]] {
			ls--
		}
		if ls == a {
			continue
		}
		if e := emailDomainEnd(t, a+1); e >= 0 {
			f(t[ls:e])
			pos = e
			a = e - 1
		}
	}
}

func emailDomainEnd(t string, i int) int {
	p := i
	for p < len(t) && emailLabel[t[p]] {
		p++
	}
	if p == i {
		return -1
	}
	end := -1
	for p+1 < len(t) && t[p] == '.' && emailLabel[t[p+1]] {
		q, letters := p+1, 0
		for q < len(t) && emailLabel[t[q]] {
			if letters == q-p-1 && (t[q] >= 'a' && t[q] <= 'z' || t[q] >= 'A' && t[q] <= 'Z') {
				letters++
			}
			q++
		}
		if letters >= 2 {
			end = p + 1 + letters
		}
		p = q
	}
	return end
}

var (
	emailLocal = classTable(func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	})
	emailLabel = classTable(func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
	})
)

// phones calls f with the matches of phoneREs[i] in t.
func phones(i int, t string, f func(m string)) {
	var end func(t string, s int) int
	switch i {
	case 0:
		end = phonePlusEnd
	case 1:
		end = phoneNANPEnd
	default:
		end = phoneZeroEnd
	}
	for s := 0; s < len(t); s++ {
		if e := end(t, s); e >= 0 {
			f(t[s:e])
			s = e - 1
		}
	}
}

// phonePlusEnd: \+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6} from s, the
// choices in the backtracking order.
func phonePlusEnd(t string, s int) int {
	if t[s] != '+' || s+1 >= len(t) || t[s+1] < '1' || t[s+1] > '9' {
		return -1
	}
	for k := digitsAt(t, s+2, 2); k >= 0; k-- {
		if e := phonePlusGroups(t, s+2+k, 0); e >= 0 {
			return e
		}
	}
	return -1
}

// phonePlusGroups matches the group from p, n times matched so far.
func phonePlusGroups(t string, p, n int) int {
	if n < 6 {
		var qs [2]int
		nq := 0
		if p < len(t) && (t[p] == ' ' || t[p] == '.' || t[p] == '-') {
			qs[nq], nq = p+1, nq+1
		}
		qs[nq], nq = p, nq+1
		for _, q := range qs[:nq] {
			var rs [2]int
			nr := 0
			if q < len(t) && t[q] == '(' {
				rs[nr], nr = q+1, nr+1
			}
			rs[nr], nr = q, nr+1
			for _, r := range rs[:nr] {
				for l := digitsAt(t, r, 5); l >= 1; l-- {
					e := r + l
					if e < len(t) && t[e] == ')' {
						if res := phonePlusGroups(t, e+1, n+1); res >= 0 {
							return res
						}
					}
					if res := phonePlusGroups(t, e, n+1); res >= 0 {
						return res
					}
				}
			}
		}
	}
	if n >= 2 {
		return p
	}
	return -1
}

// phoneNANPEnd: \(?\b[2-9]\d{2}\)?[ .-]?\d{3}[ .-]\d{4}\b from s. Every
// optional piece is followed by something its character cannot be, so
// only taking it can succeed.
func phoneNANPEnd(t string, s int) int {
	p := s
	if t[p] == '(' {
		p++
	} else if !boundaryBefore(t, p) {
		return -1
	}
	if p >= len(t) || t[p] < '2' || t[p] > '9' || digitsAt(t, p+1, 2) != 2 {
		return -1
	}
	p += 3
	if p < len(t) && t[p] == ')' {
		p++
	}
	if p < len(t) && (t[p] == ' ' || t[p] == '.' || t[p] == '-') {
		p++
	}
	if digitsAt(t, p, 3) != 3 {
		return -1
	}
	p += 3
	if p >= len(t) || (t[p] != ' ' && t[p] != '.' && t[p] != '-') {
		return -1
	}
	p++
	if digitsAt(t, p, 4) != 4 || !boundaryAfter(t, p+4) {
		return -1
	}
	return p + 4
}

// phoneZeroEnd: \b0\d{1,4}(?:[ /-]\d{2,8}){1,4}\b from s. A shorter run of
// digits than there is is followed by a digit, which neither a separator
// nor \b takes, so each run is a whole run of digits; the groups are
// taken while they can be (four at most), and when \b fails after the
// last one (a letter follows) the match ends one group earlier.
func phoneZeroEnd(t string, s int) int {
	if t[s] != '0' || !boundaryBefore(t, s) {
		return -1
	}
	d := 1 + digitsAt(t, s+1, 5)
	if d < 2 || d > 5 {
		return -1
	}
	ends := [5]int{s + d}
	n := 0
	for p := s + d; n < 4 && p+1 < len(t) && (t[p] == ' ' || t[p] == '/' || t[p] == '-'); {
		l := digitsAt(t, p+1, 9)
		if l < 2 || l > 8 {
			break
		}
		p += 1 + l
		n++
		ends[n] = p
	}
	for ; n >= 1; n-- {
		if boundaryAfter(t, ends[n]) {
			return ends[n]
		}
	}
	return -1
}

// ibanEnd: \b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b
// from s, the choices in the backtracking order.
func ibanEnd(t string, s int) int {
	if !boundaryBefore(t, s) || s+4 > len(t) || !upper(t[s]) || !upper(t[s+1]) || !isDigit(t[s+2]) || !isDigit(t[s+3]) {
		return -1
	}
	return ibanGroups(t, s+4, 0)
}

func upper(c byte) bool      { return c >= 'A' && c <= 'Z' }
func upperDigit(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

// upperDigitsAt is the number of [A-Z0-9] from t[i], at most limit.
func upperDigitsAt(t string, i, limit int) int {
	n := 0
	for n < limit && i+n < len(t) && upperDigit(t[i+n]) {
		n++
	}
	return n
}

func ibanGroups(t string, p, n int) int {
	hasSpace := p < len(t) && t[p] == ' '
	if n < 7 {
		if hasSpace && upperDigitsAt(t, p+1, 4) == 4 {
			if e := ibanGroups(t, p+5, n+1); e >= 0 {
				return e
			}
		}
		if upperDigitsAt(t, p, 4) == 4 {
			if e := ibanGroups(t, p+4, n+1); e >= 0 {
				return e
			}
		}
	}
	if n < 2 {
		return -1
	}
	// the optional tail, then \b (after an [A-Z0-9] or the pattern's
	// last group, so after a word character)
	if hasSpace {
		for l := upperDigitsAt(t, p+1, 3); l >= 1; l-- {
			if boundaryAfter(t, p+1+l) {
				return p + 1 + l
			}
		}
	}
	for l := upperDigitsAt(t, p, 3); l >= 1; l-- {
		if boundaryAfter(t, p+l) {
			return p + l
		}
	}
	if boundaryAfter(t, p) {
		return p
	}
	return -1
}

// ibans calls f with the matches of ibanRE in t.
func ibans(t string, f func(m string)) {
	for s := 0; s+4 <= len(t); s++ {
		if e := ibanEnd(t, s); e >= 0 {
			f(t[s:e])
			s = e - 1
		}
	}
}

// nis calls f with the matches of niRE in t and their prefix:
// \b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b.
// Each optional space is followed by a digit or a letter, so only taking
// it can succeed.
func nis(t string, f func(m, prefix string)) {
	for s := 0; s+8 <= len(t); s++ {
		if !niFirst[t[s]] || !niSecond[t[s+1]] || !boundaryBefore(t, s) {
			continue
		}
		p := s + 2
		ok := true
		for range 3 {
			if p < len(t) && t[p] == ' ' {
				p++
			}
			if digitsAt(t, p, 2) != 2 {
				ok = false
				break
			}
			p += 2
		}
		if !ok {
			continue
		}
		if p < len(t) && t[p] == ' ' {
			p++
		}
		if p >= len(t) || t[p] < 'A' || t[p] > 'D' || !boundaryAfter(t, p+1) {
			continue
		}
		f(t[s:p+1], t[s:s+2])
		s = p
	}
}

var (
	niFirst = classTable(func(c byte) bool {
		return upper(c) && c != 'D' && c != 'F' && c != 'I' && c != 'Q' && c != 'U' && c != 'V'
	})
	niSecond = classTable(func(c byte) bool {
		return upper(c) && c != 'D' && c != 'F' && c != 'I' && c != 'O' && c != 'Q' && c != 'U' && c != 'V'
	})
)

// dnis calls f with the matches of dniRE in t, their digits and letter:
// \b(\d{8})-?([A-Z])\b.
func dnis(t string, f func(m, digits, letter string)) {
	for s := 0; s+9 <= len(t); s++ {
		if !isDigit(t[s]) || !boundaryBefore(t, s) || digitsAt(t, s, 8) != 8 {
			continue
		}
		p := s + 8
		if p < len(t) && t[p] == '-' {
			p++
		}
		if p >= len(t) || !upper(t[p]) || !boundaryAfter(t, p+1) {
			continue
		}
		f(t[s:p+1], t[s:s+8], t[p:p+1])
		s = p
	}
}
