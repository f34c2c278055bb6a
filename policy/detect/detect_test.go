package detect

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestPII(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []Finding
	}{
		{"nothing to see here", nil},
		{"mail jane.doe+work@example.co.uk please", []Finding{{"email", "jane.doe+work@example.co.uk"}}},
		{"call +44 20 7946 0958 today", []Finding{{"phone", "+44 20 7946 0958"}}},
		{"card 4111 1111 1111 1111", []Finding{{"card", "4111 1111 1111 1111"}}},
		{"card 4111 1111 1111 1112", nil},
		{"IBAN GB82 WEST 1234 5698 7654 32", []Finding{{"iban", "GB82 WEST 1234 5698 7654 32"}}},
		{"IBAN GB82 WEST 1234 5698 7654 33", nil},
		{"ssn 123-45-6789", []Finding{{"ssn", "123-45-6789"}}},
		{"ssn 666-45-6789", nil},
		{"my SSN is 123456789", []Finding{{"ssn", "123456789"}}},
		{"NI AB 12 34 56 C", []Finding{{"ni", "AB 12 34 56 C"}}},
		{"DNI 12345678Z", []Finding{{"dni", "12345678Z"}}},
		{"DNI 12345678A", nil},
		{"server 192.168.1.20 is down", []Finding{{"ipv4", "192.168.1.20"}}},
		{"version 1.2.3.4 and 127.0.0.1", nil},
		{"host 2001:db8::8a2e:370:7334", []Finding{{"ipv6", "2001:db8::8a2e:370:7334"}}},
		{"std::vector at 12:30:45", nil},
	} {
		if got := PII(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PII(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  bool
	}{
		{"luhn valid", Luhn("79927398713")},
		{"luhn invalid", !Luhn("79927398710")},
		{"luhn non-digit", !Luhn("7992739871a")},
		{"iban valid", IBANValid("GB82WEST12345698765432")},
		{"iban invalid", !IBANValid("GB82WEST12345698765433")},
		{"mod97", Mod97("370400440532013000131489") == 1 && Mod97("194") == 0 && Mod97("1x") == -1},
		{"entropy uniform", Entropy("abcdefgh") == 3},
		{"entropy constant", Entropy("aaaaaaaa") == 0},
		{"entropy random", Entropy("Q7vX9kLm2pR8sT4wY1zB6nC3dF5gH0jK") >= EntropyThreshold},
		{"entropy identifier", Entropy("getUserAccountSettingsForTenant1") < EntropyThreshold},
	} {
		if !tc.got {
			t.Errorf("%s: failed", tc.name)
		}
	}
}

func TestSecrets(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"plain text", nil},
		{"key AKIAIOSFODNN7EXAMPLE", []string{"AWS access key id"}},
		{"token ghp_" + strings.Repeat("a1B2", 9), []string{"GitHub token"}},
		{"-----BEGIN RSA PRIVATE KEY-----", []string{"PEM private key"}},
		{"-----BEGIN PUBLIC KEY-----", nil},
		{"secret: Q7vX9kLm2pR8sT4wY1zB6nC3dF5gH0jK", []string{HighEntropy}},
		{"sha d41d8cd98f00b204e9800998ecf8427ed41d8cd9", nil},
		{"decode SGVsbG8gV29ybGQsIHRoaXMgaXMgYSB0ZXN0IG1lc3NhZ2U=", nil},
	} {
		if got := Secrets(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Secrets(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// reference is PII with every pattern run on the whole text: the windows
// must find exactly what it finds.
func reference(text string) []Finding {
	set := map[Finding]struct{}{}
	add := func(typ, s string) { set[Finding{typ, s}] = struct{}{} }
	for _, m := range emailRE.FindAllString(text, -1) {
		add("email", m)
	}
	if !scan(text).digit {
		return sorted(set)
	}
	var strong []string
	for _, m := range cardRE.FindAllString(text, -1) {
		if d := strings.NewReplacer(" ", "", "-", "").Replace(m); iinRE.MatchString(d) && Luhn(d) {
			add("card", m)
			strong = append(strong, m)
		}
	}
	shaped := ibanRE.FindAllString(text, -1)
	for _, m := range shaped {
		if c := strings.ReplaceAll(m, " ", ""); ibanLengthOK(c) && IBANValid(c) {
			add("iban", m)
			strong = append(strong, m)
		}
	}
	for _, g := range ssnRE.FindAllStringSubmatch(text, -1) {
		if ssnValid(g[1], g[2], g[3]) {
			add("ssn", g[0])
			strong = append(strong, g[0])
		}
	}
	if l := strings.ToLower(text); strings.Contains(l, "ssn") || strings.Contains(l, "social security") {
		for _, g := range ssnCueRE.FindAllStringSubmatch(text, -1) {
			if n := g[1]; ssnValid(n[0:3], n[3:5], n[5:9]) {
				add("ssn", n)
				strong = append(strong, n)
			}
		}
	}
	for _, g := range niRE.FindAllStringSubmatch(text, -1) {
		if !strings.Contains(" BG GB NK KN TN NT ZZ ", " "+g[1]+" ") {
			add("ni", g[0])
			strong = append(strong, g[0])
		}
	}
	for _, g := range dniRE.FindAllStringSubmatch(text, -1) {
		if dniValid(g[1], g[2]) {
			add("dni", g[0])
			strong = append(strong, g[0])
		}
	}
	raw := map[string]struct{}{}
	for _, re := range phoneREs {
		for _, m := range re.FindAllString(text, -1) {
			if n := countDigits(m); n >= 9 && n <= 15 && phoneLengthOK(m, n) && !ssnShapeRE.MatchString(m) {
				raw[m] = struct{}{}
			}
		}
	}
	for m := range raw {
		if !phoneCovered(m, raw) && !containedIn(m, strong) && !containedIn(m, shaped) {
			add("phone", m)
		}
	}
	for _, g := range ipv4RE.FindAllStringSubmatch(text, -1) {
		if g[1] == "" && g[3] == "" && ipv4OK(g[2]) {
			add("ipv4", g[2])
		}
	}
	if strings.Contains(text, "::") || strings.Count(text, ":") >= 7 {
		for _, m := range ipv6RE.FindAllString(text, -1) {
			if ipv6Valid(m) {
				add("ipv6", m)
			}
		}
	}
	return sorted(set)
}

var seeds = []string{
	"mail jane@example.com or call +44 20 7946 0958, card 4111-1111-1111-1111",
	"IBAN DE89 3704 0044 0532 0130 00, ssn 123-45-6789, NI AB123456C, DNI 12345678-Z",
	"hosts 10.0.0.1, v1.2.3.4, version 10.1.2.3 and fe80::1ff:fe23:4567:890a",
	"(212) 555-0188 / 030 1234 5678 / 0044 20 7946 0958 / my SSN is 123456789",
	"x@y.zz@a.bc 4111111111111111 4012888888881881 GB82WEST12345698765432",
}

func TestWindowsMatchTheWholeText(t *testing.T) {
	for _, s := range seeds {
		for _, text := range []string{s, strings.Repeat(s+" ", 5), strings.ToUpper(s)} {
			if got, want := PII(text), reference(text); !reflect.DeepEqual(got, want) {
				t.Errorf("PII(%q) = %v, whole-text patterns find %v", text, got, want)
			}
		}
	}
}

// scanReference is scan as one plain loop over the bytes.
func scanReference(text string) profile {
	var p profile
	prev := byte(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= '0' && c <= '9':
			p.digit = true
			if c == '0' {
				p.zero = true
			}
		case c == '@':
			p.at = true
		case c == '+':
			p.plus = true
		case c == '-':
			p.dash = true
		case c == '.':
			p.dot = true
		case c == ':':
			p.colons++
			if prev == ':' {
				p.doubleColon = true
			}
		}
		prev = c
	}
	return p
}

func checkScan(t *testing.T, text string) {
	t.Helper()
	if got, want := scan(text), scanReference(text); got != want {
		t.Fatalf("scan(%q) = %+v, want %+v", text, got, want)
	}
	if got, want := hasDigit(text), scanReference(text).digit; got != want {
		t.Fatalf("hasDigit(%q) = %v, want %v", text, got, want)
	}
}

func TestScan(t *testing.T) {
	for _, s := range append([]string{"", "0", "9", "a:b::c", ":::", "x@y+z-w.v"}, seeds...) {
		checkScan(t, s)
	}
}

// checkScanners compares each hand-written matcher with its regexp on the
// whole text: the same matches, in the same order.
func checkScanners(t *testing.T, text string) {
	t.Helper()
	collect := func(scan func(f func(m string))) []string {
		var out []string
		scan(func(m string) { out = append(out, m) })
		return out
	}
	check := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s(%q) = %q, the regexp finds %q", name, text, got, want)
		}
	}
	check("emails", collect(func(f func(string)) { emails(text, f) }), emailRE.FindAllString(text, -1))
	for i, re := range phoneREs {
		check(fmt.Sprintf("phones[%d]", i), collect(func(f func(string)) { phones(i, text, f) }), re.FindAllString(text, -1))
	}
	check("ibans", collect(func(f func(string)) { ibans(text, f) }), ibanRE.FindAllString(text, -1))
	var got, want []string
	nis(text, func(m, prefix string) { got = append(got, m, prefix) })
	for _, g := range niRE.FindAllStringSubmatch(text, -1) {
		want = append(want, g[0], g[1])
	}
	check("nis", got, want)
	got, want = nil, nil
	dnis(text, func(m, digits, letter string) { got = append(got, m, digits, letter) })
	for _, g := range dniRE.FindAllStringSubmatch(text, -1) {
		want = append(want, g...)
	}
	check("dnis", got, want)
	for _, m := range append(got, text) {
		if ssnShape(m) != ssnShapeRE.MatchString(m) {
			t.Fatalf("ssnShape(%q) = %v", m, ssnShape(m))
		}
	}
}

// scannerSeeds are edge cases of the hand-written matchers.
var scannerSeeds = []string{
	"a@b.c1.de a@b.com1@c.de x@y.z1 @a.bc .@a.b.cd. a@b@c.com ab@-.xy1.z",
	"+1234567 +12 +123 +44 (20) 7946-0958) +1(23)45(6 +9.8-7 6 5 4 3 2 1 0",
	"(212) 555-0188 (2125) 555-0188 212555-0188a 212.555.0188_ x212 555 0188",
	"0123 45 6789 0123/456789012 01 23 45 67 89x 012345 0 12 00 1234567 12a",
	"GB82 WEST 1234 5698 7654 32 GB82WEST12345698765432X DE89 3704 0044 0532 0130 00 ABC",
	"AB 12 34 56 C AB123456D AB12 34 56CX QQ123456A 12345678Z 12345678-Z 123456789Z",
	"123-45-6789 123-45-67890 0123-45-6789",
}

func TestScanners(t *testing.T) {
	for _, s := range append(scannerSeeds, seeds...) {
		checkScanners(t, s)
	}
}

func FuzzPII(f *testing.F) {
	for _, s := range append(scannerSeeds, seeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkScan(t, text)
		checkScanners(t, text)
		got := PII(text)
		if want := reference(text); !reflect.DeepEqual(got, want) {
			t.Fatalf("PII(%q) = %v, whole-text patterns find %v", text, got, want)
		}
		for _, f := range got {
			if !strings.Contains(text, f.Text) {
				t.Fatalf("finding %v is not in the text", f)
			}
		}
		Secrets(text)
		for _, tok := range LongTokens(text) {
			if len(tok) < 24 || !strings.Contains(text, tok) {
				t.Fatalf("long token %q", tok)
			}
		}
	})
}

// containsAnyReference is ContainsAny by definition.
func containsAnyReference(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestContainsAny(t *testing.T) {
	f := func(s string, subs ...string) {
		t.Helper()
		if got, want := ContainsAny(s, subs), containsAnyReference(s, subs); got != want {
			t.Fatalf("ContainsAny(%q, %q) = %v, want %v", s, subs, got, want)
		}
	}
	f("")
	f("", "a", "b", "c")
	f("", "a", "", "c")
	f("abc", "x", "y", "c")
	f("abc", "x", "y", "z")
	f("abc", "x", "y", "bc")
	f("abc", "x", "y", "abcd")
	f("xxignore", "ignore", "dan", "act as")
	f("ignor", "ignore", "dan", "act as")
	f("sk-\xff\xfe", "\xff\xfe", "AKIA", "eyJ")
	f(strings.Repeat("in the instructions", 3), "ignore", "instructionz", "system>")
	many := make([]string, 40)
	for i := range many {
		many[i] = strings.Repeat("q", i+1) + "!"
	}
	f("qqqqq!", many...)
	f("qqqq", many...)
	for _, s := range seeds {
		f(s, secretTriggers...)
		f(strings.ToLower(s), "ignore", "disregard", "forget", "system prompt", "dan", "act as", "pretend")
	}
}

func FuzzContainsAny(f *testing.F) {
	f.Add("ignore all previous", "ignore|dan|act as")
	f.Add("xoxb-1 AKIA", strings.Join(secretTriggers, "|"))
	f.Add("ab", "b|ab|x")
	f.Fuzz(func(t *testing.T, s, list string) {
		subs := strings.Split(list, "|")
		if got, want := ContainsAny(s, subs), containsAnyReference(s, subs); got != want {
			t.Fatalf("ContainsAny(%q, %q) = %v, want %v", s, subs, got, want)
		}
	})
}
