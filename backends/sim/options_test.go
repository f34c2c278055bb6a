package sim

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestProfileOrderDoesNotMatter(t *testing.T) {
	for _, args := range [][]string{
		{"--profile", "large", "--itl", "5ms", "--max-num-seqs", "7"},
		{"--itl", "5ms", "--max-num-seqs", "7", "--profile", "large"},
		{"--itl=5ms", "--profile=fast", "--max-num-seqs=7", "--profile=large"},
	} {
		o, err := ParseArgs("sim", args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if o.ITL != 5*time.Millisecond || o.MaxNumSeqs != 7 || o.Profile != "large" || o.ITLPerSeq != 300*time.Microsecond {
			t.Errorf("%v: itl %v, max-num-seqs %d, profile %s, itl-per-seq %v", args, o.ITL, o.MaxNumSeqs, o.Profile, o.ITLPerSeq)
		}
	}
}

func TestDefaultsAreSmallProfile(t *testing.T) {
	a := DefaultOptions()
	b, err := ParseArgs("sim", []string{"--profile", "small"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("defaults %+v\nsmall   %+v", a, b)
	}
}

func TestOptionsFromMap(t *testing.T) {
	o, err := OptionsFromMap(map[string]string{"model": "sim-chat", "profile": "small", "itl": "5ms", "listen": "127.0.0.1:1,127.0.0.1:2", "speed": "1,0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Model != "sim-chat" || o.ITL != 5*time.Millisecond || len(o.Listen) != 2 {
		t.Fatalf("%+v", o)
	}
	per := o.PerServer()
	if len(per) != 2 || per[1].Listen[0] != "127.0.0.1:2" || per[1].Speed[0] != 0.5 || per[0].Speed[0] != 1 {
		t.Errorf("PerServer: %+v", per)
	}
	if _, err := New(o); err == nil {
		t.Error("New accepted two speeds")
	}
	if _, err := New(per[1]); err != nil {
		t.Error(err)
	}
}

func TestOptionErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		m    map[string]string
		want string
	}{
		{map[string]string{"itll": "5ms"}, `"itll"`},
		{map[string]string{"itl": "fast"}, `"itl"`},
		{map[string]string{"profile": "huge"}, `"profile"`},
		{map[string]string{"max-num-seqs": "0"}, "max-num-seqs"},
		{map[string]string{"speed": "0"}, `"speed"`},
		{map[string]string{"listen": "a:1,b:2", "speed": "1,2,3"}, "speed"},
		{map[string]string{"output-len": "poisson:3"}, "output-len"},
		{map[string]string{"error-rate": "0.7", "slow-rate": "0.7"}, "at most 1"},
		{map[string]string{"listen": "nocolon"}, `"listen"`},
		{map[string]string{"model": ""}, "model"},
	}
	for _, c := range cases {
		_, err := OptionsFromMap(c.m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to mention %s", c.m, err, c.want)
		}
	}
}

func TestOutputLen(t *testing.T) {
	cases := []struct {
		spec   string
		lo, hi int
	}{
		{"max", 0, 0},
		{"42", 42, 42},
		{"uniform:10-20", 10, 20},
		{"normal:100,10", 1, 1000},
		{"exp:50", 1, 100000},
	}
	for _, c := range cases {
		d, err := parseOutputLen(c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		for seed := range uint64(200) {
			if n := d.natural(seed); n < c.lo || n > c.hi {
				t.Fatalf("%s: natural(%d) = %d, want in %d..%d", c.spec, seed, n, c.lo, c.hi)
			}
		}
	}
	for _, bad := range []string{"0", "uniform:5", "uniform:9-3", "normal:1", "exp:0", "x:1", "-3"} {
		if _, err := parseOutputLen(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOutputLenDistributionStops(t *testing.T) {
	s := newTestServer(t, testOptions(t, map[string]string{"output-len": "5"}))
	r, e := s.parseChat([]byte(chatBody("hi", 100)))
	if e != nil {
		t.Fatal(e)
	}
	if r.seqs[0].out != 5 || r.seqs[0].finish != "stop" {
		t.Errorf("out %d finish %s, want 5 stop", r.seqs[0].out, r.seqs[0].finish)
	}
	r, _ = s.parseChat([]byte(chatBody("hi", 3)))
	if r.seqs[0].out != 3 || r.seqs[0].finish != "length" {
		t.Errorf("out %d finish %s, want 3 length", r.seqs[0].out, r.seqs[0].finish)
	}
	r, _ = s.parseChat([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":2,"max_tokens":50}`))
	if r.seqs[0].out != 2 {
		t.Errorf("max_completion_tokens ignored: out %d", r.seqs[0].out)
	}
}
