package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LoadAverage is the system load averaged over 1, 5 and 15 minutes, as
// /proc/loadavg gives it. On a shared machine it says how much of the
// machine a figure had.
type LoadAverage [3]float64

func (l LoadAverage) String() string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

// ReadLoadAverage reads /proc/loadavg (Linux only).
func ReadLoadAverage() (LoadAverage, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return LoadAverage{}, fmt.Errorf("read load average: %w", err)
	}
	return parseLoadAvg(string(b))
}

func parseLoadAvg(s string) (LoadAverage, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return LoadAverage{}, fmt.Errorf("parse load average %q: want three numbers", s)
	}
	var l LoadAverage
	for i := range 3 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return LoadAverage{}, fmt.Errorf("parse load average %q: %w", s, err)
		}
		l[i] = v
	}
	return l, nil
}

// Memory is a process's resident memory, from /proc/<pid>/status.
type Memory struct {
	// RSSBytes is VmRSS, the resident set now; PeakBytes is VmHWM, its
	// high-water mark.
	RSSBytes  int64 `json:"rss_bytes"`
	PeakBytes int64 `json:"peak_rss_bytes"`
}

// ReadMemory reads the resident memory of process pid; pid 0 means this
// process (Linux only).
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return Memory{}, fmt.Errorf("read process memory: %w", err)
	}
	return parseStatus(string(b))
}

func parseStatus(s string) (Memory, error) {
	var m Memory
	var found int
	for line := range strings.Lines(s) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("parse %s line %q: want a number of kB", key, strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse %s line %q: %w", key, strings.TrimSpace(line), err)
		}
		if key == "VmRSS" {
			m.RSSBytes = kb << 10
		} else {
			m.PeakBytes = kb << 10
		}
		found++
	}
	if found != 2 {
		return Memory{}, errors.New("parse process status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ).
// It is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time (user + system) process pid has used;
// pid 0 means this process.
func ProcessCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, fmt.Errorf("read own CPU time: %w", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse process stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse process stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse process stat: CPU time %q: %w", v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// FindChildProcess returns the ID of a child of this process whose command
// name is name (such as "temporal", the dev server), or an error if there
// is none (Linux only).
func FindChildProcess(name string) (int, error) {
	self := os.Getpid()
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended meanwhile
		}
		comm, ppid, err := parseStatParent(string(b))
		if err == nil && ppid == self && comm == name {
			return strconv.Atoi(filepath.Base(filepath.Dir(p)))
		}
	}
	return 0, fmt.Errorf("no child process named %q", name)
}

func parseStatParent(s string) (comm string, ppid int, err error) {
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, errors.New("parse process stat: no command name")
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return "", 0, errors.New("parse process stat: no parent")
	}
	ppid, err = strconv.Atoi(f[1])
	return s[open+1 : closing], ppid, err
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}
