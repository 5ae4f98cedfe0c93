package bench

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseLoadAvg(t *testing.T) {
	got, err := parseLoadAvg("1.92 2.40 3.05 4/812 12345\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (LoadAverage{1.92, 2.40, 3.05}); got != want {
		t.Errorf("parseLoadAvg = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1.0 2.0", "a b c"} {
		if _, err := parseLoadAvg(bad); err == nil {
			t.Errorf("parseLoadAvg(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseStatus_ReadsRSSAndPeak(t *testing.T) {
	status := "Name:\tbench\nVmPeak:\t 900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n"
	got, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if got.RSSBytes != 100<<20 || got.PeakBytes != 200<<20 {
		t.Errorf("parseStatus = %+v, want RSS 100 MiB, peak 200 MiB", got)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\nVmHWM:\t12 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, err := parseStatus(bad); err == nil {
			t.Errorf("parseStatus(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseStatCPU_CountsFromTheCommandNamesEnd(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the
	// fields: utime 250 and stime 50 ticks are 3 s.
	stat := "4242 (tem poral) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0\n"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, want 3s", got)
	}
	comm, ppid, err := parseStatParent(stat)
	if err != nil || comm != "tem poral) x" || ppid != 1 {
		t.Errorf("parseStatParent = %q, %d, %v; want \"tem poral) x\", 1, nil", comm, ppid, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a b"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded, want an error", bad)
		}
	}
}

func TestProcFS_ReadsThisProcessAndFindsAChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	m, err := ReadMemory(0)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSBytes <= 0 || m.PeakBytes < m.RSSBytes {
		t.Errorf("ReadMemory(self) = %+v, want 0 < RSS ≤ peak", m)
	}
	if _, err := ReadLoadAverage(); err != nil {
		t.Error(err)
	}
	if _, err := ProcessCPU(0); err != nil {
		t.Error(err)
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid, err := FindChildProcess("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if pid != cmd.Process.Pid {
		t.Errorf("FindChildProcess(sleep) = %d, want %d", pid, cmd.Process.Pid)
	}
	if _, err := ProcessCPU(pid); err != nil {
		t.Error(err)
	}
	if _, err := FindChildProcess("no-such-command"); err == nil {
		t.Error("FindChildProcess found a child that does not exist")
	}
	if _, err := ReadMemory(os.Getpid()); err != nil {
		t.Error(err)
	}
}
