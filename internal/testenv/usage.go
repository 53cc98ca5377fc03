package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has cost so far, from /proc.
type Usage struct {
	Command string
	Parent  int
	// CPU is user and system time since the process started.
	CPU time.Duration
	// RSS is resident memory now; PeakRSS the most it ever held (VmHWM).
	RSS, PeakRSS int64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// UsageOf reads pid's Usage.
func UsageOf(pid int) (Usage, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Usage{}, err
	}
	// "pid (comm) state ppid … utime (14th) stime (15th)"; comm may hold
	// spaces and parentheses, so fields count from the last ')'.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	fields := strings.Fields(string(stat[end+1:]))
	if open < 0 || end < open || len(fields) < 13 {
		return Usage{}, fmt.Errorf("%s/stat: unexpected %q", dir, stat)
	}
	u := Usage{Command: string(stat[open+1 : end])}
	u.Parent, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	u.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Usage{}, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case err != nil:
		case name == "VmRSS":
			u.RSS = kb << 10
		case name == "VmHWM":
			u.PeakRSS = kb << 10
		}
	}
	return u, nil
}

// Usage is the process's Usage so far.
func (p *Process) Usage() (Usage, error) { return UsageOf(p.cmd.Process.Pid) }

// LoadAverage is the machine's 1-, 5- and 15-minute load averages, as
// /proc/loadavg has them ("0.08 0.31 0.40"): printed next to a figure, it
// tells a reader whether something else was running.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// Pinned is exec.Command(name, args...) held to the given CPUs ("1",
// "0-1") by taskset, so that a benchmark's subject and its load generator
// do not take each other's cores; on a machine of one CPU, or without
// taskset, it is the plain command and pinned is false.
func Pinned(cpus, name string, args ...string) (cmd *exec.Cmd, pinned bool) {
	// Not runtime.NumCPU: it counts the CPUs this process may use, and the
	// load generator is itself held to one.
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	taskset, err := exec.LookPath("taskset")
	if err != nil || strings.TrimSpace(string(online)) == "0" || len(online) == 0 {
		return exec.Command(name, args...), false
	}
	return exec.Command(taskset, append([]string{"--cpu-list", cpus, name}, args...)...), true
}
