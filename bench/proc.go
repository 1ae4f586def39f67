package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of the times in /proc/<pid>/stat (100 on
// every Linux this runs on).
const clkTck = 100

// procStat holds the fields of /proc/<pid>/stat this program needs.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime float64 // seconds
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(k int) float64 { v, _ := strconv.ParseFloat(f[k], 64); return v / clkTck }
	ppid, _ := strconv.Atoi(f[1])
	// After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	return procStat{ppid: ppid, utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, nil
}

// cpuSeconds is the CPU time of one process (all its threads).
func cpuSeconds(pid int) float64 {
	s, err := readStat(pid)
	if err != nil {
		return 0
	}
	return s.utime + s.stime
}

// treeMeter measures the CPU time of a process tree (a Postgres cluster:
// the postmaster and its backends) by sampling: it remembers the latest
// CPU time of every process it has seen, so a backend that exits keeps
// counting what it used until its last sample. (The parent's cutime is no
// help: it was seen to go backwards under load.) A backend that lives
// less than one sampling interval is missed; LastMile's are pooled.
type treeMeter struct {
	root func() (int, error)
	mu   sync.Mutex
	seen map[int]float64
}

func newTreeMeter(root func() (int, error)) *treeMeter {
	return &treeMeter{root: root, seen: map[int]float64{}}
}

func (m *treeMeter) sample() {
	pid, err := m.root()
	if err != nil {
		return
	}
	pids := append(childrenOf(pid), pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pids {
		if c := cpuSeconds(p); c > m.seen[p] {
			m.seen[p] = c
		}
	}
}

// total samples now and returns the CPU seconds of every process seen.
func (m *treeMeter) total() float64 {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	var t float64
	for _, c := range m.seen {
		t += c
	}
	return t
}

// run samples every interval until ctx ends.
func (m *treeMeter) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample()
		}
	}
}

// childrenOf lists the living children of pid.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(p); err == nil && s.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// rssBytes is the resident memory of a process, from /proc/<pid>/statm.
func rssBytes(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize())
}

// selfCPUSeconds is this program's own CPU time (the load program).
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineBusy returns the machine's busy and total jiffies from /proc/stat.
func machineBusy() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		total += v
		if i != 4 && i != 5 { // idle, iowait
			busy += v
		}
	}
	return busy / clkTck, total / clkTck
}

// postmasterPID reads the pid of a Postgres cluster from its data folder.
func postmasterPID(pgdata string) (int, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}
