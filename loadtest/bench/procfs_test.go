package main

import (
	"os"
	"strings"
	"testing"
)

const statFixture = "4242 (switchyard) S 4200 4242 4200 0 -1 4194560 1234 0 0 0 731 152 0 0 20 0 9 0 12345 1260765184 4321 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	f := func(name, in string, want ProcStat, wantErr string) {
		t.Helper()
		got, err := ParseStat(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	f("plain", statFixture, ProcStat{PPID: 4200, CPU: CPUTicks{User: 731, System: 152}}, "")
	f("name with spaces and parens",
		strings.Replace(statFixture, "(switchyard)", "(nginx: worker (x) y)", 1),
		ProcStat{PPID: 4200, CPU: CPUTicks{User: 731, System: 152}}, "")
	f("no paren", "4242 switchyard S 1 2 3", ProcStat{}, "no ')'")
	f("too short", "4242 (x) S 1 2 3", ProcStat{}, "fields")
	f("bad utime", strings.Replace(statFixture, " 731 ", " x ", 1), ProcStat{}, "utime")
	f("bad ppid", strings.Replace(statFixture, " 4200 4242", " p 4242", 1), ProcStat{}, "ppid")
	f("empty", "", ProcStat{}, "no ')'")
	if got := (CPUTicks{User: 731, System: 152}).Total(); got != 883 {
		t.Errorf("Total = %d, want 883", got)
	}
}

const statusFixture = `Name:	switchyard
Umask:	0022
State:	S (sleeping)
Pid:	4242
VmPeak:	 1231232 kB
VmSize:	 1231232 kB
VmHWM:	   19044 kB
VmRSS:	   10112 kB
RssAnon:	    4096 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	f := func(name, in string, want MemKB, wantErr string) {
		t.Helper()
		got, err := ParseStatus(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	f("plain", statusFixture, MemKB{RSS: 10112, HWM: 19044}, "")
	f("no trailing newline", strings.TrimSpace(statusFixture), MemKB{RSS: 10112, HWM: 19044}, "")
	f("kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", MemKB{}, "missing")
	f("only RSS", "VmRSS:\t 12 kB\n", MemKB{}, "missing")
	f("bad unit", strings.Replace(statusFixture, "10112 kB", "10112 MB", 1), MemKB{}, "VmRSS")
	f("bad number", strings.Replace(statusFixture, "19044 kB", "1x kB", 1), MemKB{}, "VmHWM")
}

func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	pid := os.Getpid()
	st, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() {
		t.Errorf("ppid %d, want %d", st.PPID, os.Getppid())
	}
	m, err := readMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS == 0 || m.HWM < m.RSS {
		t.Errorf("implausible memory %+v", m)
	}
	kids, err := childrenOf(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		found = found || k == pid
	}
	if !found {
		t.Errorf("childrenOf(%d) = %v, want it to include %d", os.Getppid(), kids, pid)
	}
	if hz := ClockTicks(); hz <= 0 {
		t.Errorf("ClockTicks = %g", hz)
	}
	s := sampleMem([]int{pid}, 5e6)
	mx, err := s.Stop()
	if err != nil || mx.RSS == 0 {
		t.Errorf("sampler: %+v, %v", mx, err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(statFixture)
	f.Add("1 (a) b)) S 0 0 0 0 0 0 0 0 0 0 5 6")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStat(s)
		if err == nil && st.CPU.Total() < st.CPU.User {
			t.Fatalf("overflowing total for %q", s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add(statusFixture)
	f.Add("VmRSS: 1 kB\nVmHWM: 2 kB")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseStatus(s)
		if err != nil && m != (MemKB{}) {
			t.Fatalf("error %v with a non-zero result %+v", err, m)
		}
	})
}

func BenchmarkParseStat(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStat(statFixture); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseStatus(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStatus(statusFixture); err != nil {
			b.Fatal(err)
		}
	}
}
