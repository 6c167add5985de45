package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeProc is a /proc with just the files the readers look at.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	return &fakeProc{t: t, root: t.TempDir()}
}

func (f *fakeProc) write(name, content string) {
	f.t.Helper()
	path := filepath.Join(f.root, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// proc adds process pid named comm with the given CPU ticks and title.
func (f *fakeProc) proc(pid int, comm string, utime, stime, cutime, cstime int, title string) {
	f.write(fmt.Sprintf("%d/stat", pid), fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 120 0 0 0 %d %d %d %d 20 0 1 0 99 221016064 6170 18446744073709551615 1 1 0 0 0 0 0 16781312 0 0 0 0 17 1 0 0 0 0 0\n",
		pid, comm, pid, pid, utime, stime, cutime, cstime))
	f.write(fmt.Sprintf("%d/cmdline", pid), strings.ReplaceAll(title, " ", "\x00")+"\x00\x00\x00")
}

func TestProcCPU(t *testing.T) {
	t.Parallel()
	f := newFakeProc(t)
	f.proc(7, "odd (name) x", 150, 50, 7, 3, "odd")
	comm, cpu, err := procCPU(f.root, 7)
	if err != nil || comm != "odd (name) x" || cpu != 2100*time.Millisecond {
		t.Errorf("procCPU = %q, %v, %v; want \"odd (name) x\", 2.1s (210 ticks), nil", comm, cpu, err)
	}
	if own, err := procOwnCPU(f.root, 7); err != nil || own != 2*time.Second {
		t.Errorf("procOwnCPU = %v, %v; want 2s", own, err)
	}
	f.write("8/stat", "8 (short) S 1 2 3\n")
	if _, _, err := procCPU(f.root, 8); err == nil {
		t.Error("procCPU of a truncated stat: nil error")
	}
	f.write("9/stat", "9 no parens\n")
	if _, _, err := procCPU(f.root, 9); err == nil {
		t.Error("procCPU without (comm): nil error")
	}
	if _, _, err := procCPU(f.root, 10); err == nil {
		t.Error("procCPU of a missing process: nil error")
	}
	// The real thing: this test process.
	if comm, _, err := procCPU("/proc", os.Getpid()); err != nil || comm == "" {
		t.Errorf("procCPU(/proc, self) = %q, %v", comm, err)
	}
}

func TestPGCountsFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		title string
		want  bool
	}{
		{"postgres: 15/main: postgres referd_e2e 127.0.0.1(47088) idle", true},
		{"postgres: 15/main: postgres referd_e2e [local] SELECT", true},
		{"postgres: postgres referd_e2e 127.0.0.1(47088) INSERT", true}, // no cluster name
		{"postgres: 15/main: postgres postgres 127.0.0.1(47110) CREATE TABLE", false},
		{"postgres: 15/main: app referd_e2e_other 127.0.0.1(1) idle", false},
		{"postgres: 15/main: autovacuum worker referd_e2e", true},
		{"postgres: 15/main: autovacuum worker postgres", false},
		{"postgres: 15/main: checkpointer ", true},
		{"postgres: 15/main: background writer ", true},
		{"postgres: walwriter ", true},
		{"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", true}, // the postmaster
	} {
		title := strings.ReplaceAll(c.title, " ", "\x00") + "\x00\x00"
		if got := pgCountsFor(title, "referd_e2e"); got != c.want {
			t.Errorf("pgCountsFor(%q) = %v, want %v", c.title, got, c.want)
		}
	}
}

// sampleCPU sums postgres and redis-server processes by name, takes the
// postmaster's waited-for children along (but not for one database's
// share), and the named referd process on its own.
func TestSampleCPU(t *testing.T) {
	t.Parallel()
	f := newFakeProc(t)
	f.proc(10, "postgres", 100, 100, 0, 0, "postgres: 15/main: postgres referd_e2e 127.0.0.1(1) idle")
	f.proc(11, "postgres", 300, 0, 0, 0, "postgres: 15/main: postgres postgres 127.0.0.1(2) idle")
	f.proc(12, "postgres", 10, 10, 0, 0, "postgres: 15/main: checkpointer ")
	f.proc(13, "postgres", 5, 5, 1000, 0, "/usr/lib/postgresql/15/bin/postgres -D /x")
	f.proc(20, "redis-server", 40, 10, 0, 0, "redis-server 127.0.0.1:6379")
	f.proc(30, "referd", 700, 300, 0, 0, "referd serve")
	f.proc(40, "bash", 999, 999, 0, 0, "bash")
	f.write("self/stat", "not a process")
	f.write("stat", "cpu  100 20 30 400 50 6 4 0 0 0\ncpu0 50 10 15 200 25 3 2 0 0 0\n")

	s := sampleCPU(f.root, 30, "referd_e2e")
	if !s.referdOK || s.referd != 10*time.Second {
		t.Errorf("referd = %v (found %v), want 10s", s.referd, s.referdOK)
	}
	if s.postgresProcs != 4 || s.postgres != (200+300+20+1010)*10*time.Millisecond {
		t.Errorf("postgres = %v over %d processes, want 15.3s over 4", s.postgres, s.postgresProcs)
	}
	if !s.postgresDBOK || s.postgresDB != (200+20+10)*10*time.Millisecond {
		t.Errorf("postgres for referd_e2e = %v (%v), want 2.3s", s.postgresDB, s.postgresDBOK)
	}
	if s.redisProcs != 1 || s.redis != 500*time.Millisecond {
		t.Errorf("redis = %v over %d, want 0.5s over 1", s.redis, s.redisProcs)
	}
	if !s.machineOK || s.machineBusy != 1600*time.Millisecond {
		t.Errorf("machine busy = %v (%v), want 1.6s (user+nice+system+irq+softirq+steal)", s.machineBusy, s.machineOK)
	}
	if s.self <= 0 {
		t.Errorf("self = %v, want this test's CPU", s.self)
	}

	s = sampleCPU(f.root, 0, "")
	if s.referdOK || s.postgresDBOK || s.postgresProcs != 4 {
		t.Errorf("without pid and db: %+v", s)
	}
	if s := sampleCPU(f.root, 99, ""); s.referdOK {
		t.Error("a missing -pid process was found")
	}
}

func TestPeakRSS(t *testing.T) {
	t.Parallel()
	f := newFakeProc(t)
	f.write("5/status", "Name:\treferd\nVmPeak:\t 1300000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n")
	if got, err := peakRSS(f.root, 5); err != nil || got != 51234*1024 {
		t.Errorf("peakRSS = %d, %v; want %d", got, err, 51234*1024)
	}
	f.write("6/status", "Name:\tkthreadd\nVmRSS:\t 0 kB\n")
	if _, err := peakRSS(f.root, 6); err == nil {
		t.Error("peakRSS without VmHWM: nil error")
	}
	f.write("7/status", "VmHWM:\t 12 MB\n")
	if _, err := peakRSS(f.root, 7); err == nil {
		t.Error("peakRSS with an odd unit: nil error")
	}
	if got, err := peakRSS("/proc", os.Getpid()); err != nil || got <= 0 {
		t.Errorf("peakRSS(/proc, self) = %d, %v", got, err)
	}
}

func TestLoadAvgAndMachine(t *testing.T) {
	t.Parallel()
	f := newFakeProc(t)
	if got := loadAvg(f.root); got != "" {
		t.Errorf("loadAvg without the file = %q", got)
	}
	f.write("loadavg", "13.21 13.67 8.57 6/312 32750\n")
	if got := loadAvg(f.root); got != "13.21 13.67 8.57" {
		t.Errorf("loadAvg = %q", got)
	}
	f.write("stat", "intr 1 2 3\n")
	if _, ok := machineBusy(f.root); ok {
		t.Error("machineBusy of a stat without a cpu line: ok")
	}
	if busy, ok := machineBusy("/proc"); !ok || busy <= 0 {
		t.Errorf("machineBusy(/proc) = %v, %v", busy, ok)
	}
	if got := loadAvg("/proc"); len(strings.Fields(got)) != 3 {
		t.Errorf("loadAvg(/proc) = %q", got)
	}
	for _, field := range strings.Fields(loadAvg("/proc")) {
		if _, err := strconv.ParseFloat(field, 64); err != nil {
			t.Errorf("loadAvg(/proc) field %q: %v", field, err)
		}
	}
}
