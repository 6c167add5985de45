package main

// CPU time and peak memory of local processes, read from /proc (Linux), for
// -e2e's CPU per event and referd's peak RSS.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// Process names (the comm field of /proc/<pid>/stat) whose CPU -e2e counts.
const (
	postgresComm = "postgres"
	redisComm    = "redis-server"
)

// procCPU reads /proc/<pid>/stat under root and returns the process's name
// and its CPU time: user and system time of all its threads, plus those of
// its children it has waited for. Counting the waited-for children keeps a
// sum over processes right when a process exits between two samples:
// PostgreSQL's postmaster waits for every backend, so a backend's time moves
// into the postmaster's.
func procCPU(root string, pid int) (comm string, cpu time.Duration, err error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
	// it ends at the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("%s/%d/stat: no (comm)", root, pid)
	}
	comm = string(b[open+1 : end])
	fields := strings.Fields(string(b[end+1:]))
	// fields[0] is field 3 (state); utime, stime, cutime, cstime are fields
	// 14 to 17.
	if len(fields) < 15 {
		return "", 0, fmt.Errorf("%s/%d/stat: %d fields after comm, want at least 15", root, pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("%s/%d/stat: %v", root, pid, err)
		}
		ticks += n
	}
	return comm, time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuSample is the CPU time used so far by the processes -e2e watches.
type cpuSample struct {
	referd        time.Duration // the process -pid names
	referdOK      bool          // it was found
	postgres      time.Duration // every process named postgres, waited-for children included
	postgresPIDs  map[int]time.Duration
	postgresProcs int
	postgresDB    time.Duration // the backends of one database and the server's own processes
	postgresDBOK  bool          // a database was named
	redis         time.Duration // every process named redis-server
	redisPIDs     map[int]time.Duration
	redisProcs    int
	self          time.Duration // this process (the load generator and the sink)
	machineBusy   time.Duration // every CPU's non-idle time, from /proc/stat
	machineOK     bool
}

// sampleCPU reads the CPU times of process pid (if pid > 0), of every
// postgres and redis-server process, and of the whole machine, under root.
// If db is not "", it also sums the PostgreSQL processes that work for
// database db (see pgCountsFor). Processes that vanish while it reads are
// skipped.
func sampleCPU(root string, pid int, db string) cpuSample {
	s := cpuSample{postgresDBOK: db != "", postgresPIDs: map[int]time.Duration{}, redisPIDs: map[int]time.Duration{}}
	if pid > 0 {
		if _, cpu, err := procCPU(root, pid); err == nil {
			s.referd, s.referdOK = cpu, true
		}
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p <= 0 || p == pid {
			continue
		}
		comm, cpu, err := procCPU(root, p)
		if err != nil {
			continue
		}
		switch comm {
		case postgresComm:
			s.postgres += cpu
			s.postgresPIDs[p] = cpu
			s.postgresProcs++
			if db != "" {
				own, err := procOwnCPU(root, p)
				title, terr := os.ReadFile(filepath.Join(root, strconv.Itoa(p), "cmdline"))
				if err == nil && terr == nil && pgCountsFor(string(title), db) {
					s.postgresDB += own
				}
			}
		case redisComm:
			s.redis += cpu
			s.redisPIDs[p] = cpu
			s.redisProcs++
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.machineBusy, s.machineOK = machineBusy(root)
	return s
}

// procOwnCPU is procCPU without the waited-for children: a process's own
// user and system time.
func procOwnCPU(root string, pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("%s/%d/stat: no (comm)", root, pid)
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s/%d/stat: %d fields after comm, want at least 13", root, pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%d/stat: %v", root, pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// pgCountsFor reports whether the PostgreSQL process with this title
// (/proc/<pid>/cmdline, which PostgreSQL rewrites) works for database db: a
// backend or autovacuum worker of db, or one of the server's own processes
// that every database shares (the postmaster, checkpointer, background
// writer, WAL writer, launchers). Backends of other databases do not count.
// Titles look like "postgres: 15/main: postgres referd_e2e 127.0.0.1(5432)
// idle", where "15/main:" is the optional cluster name.
func pgCountsFor(title, db string) bool {
	title = strings.TrimSpace(strings.ReplaceAll(title, "\x00", " "))
	rest, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return true // the postmaster, still showing its command line
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:] // the cluster name
	}
	switch {
	case len(f) >= 3 && f[0] == "autovacuum" && f[1] == "worker":
		return f[2] == db
	case len(f) >= 3 && (strings.HasSuffix(f[2], ")") || f[2] == "[local]"):
		return f[1] == db // "user db host(port) activity"
	default:
		return true
	}
}

// machineBusy returns the non-idle CPU time of all CPUs since boot, from
// the first line of /proc/stat under root.
func machineBusy(root string) (time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ, true
}

// loadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg
// under root, as written there ("" if unreadable).
func loadAvg(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "loadavg"))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// peakRSS returns VmHWM, the peak resident set size, of process pid in
// bytes, from /proc/<pid>/status under root.
func peakRSS(root string, pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s/%d/status: odd VmHWM line %q", root, pid, strings.TrimSpace(line))
		}
		kB, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%d/status: %v", root, pid, err)
		}
		return kB << 10, nil
	}
	return 0, errors.New(filepath.Join(root, strconv.Itoa(pid), "status") + ": no VmHWM line")
}

// grown is the CPU time the processes of after used since before, process by
// process: one that exited meanwhile (a whole server stopping, which no parent
// waits for here) takes nothing away, and one that started counts in full.
func grown(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for p, cpu := range after {
		if b, ok := before[p]; ok && b <= cpu {
			d += cpu - b
		} else if !ok {
			d += cpu
		}
	}
	return d
}
