package dash

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// hostFacts is what the header shows about the host.
type hostFacts struct {
	Runtime  string // "Kata VMs", "runc containers" or "no guest runtime"
	VM       bool   // guests are VMs
	Warning  string // non-empty when guests are not isolated by a VM
	CPUs     int
	CPUFree  float64 // idle share of all cores since the previous sample, 0..1
	MemTotal uint64
	MemFree  uint64 // MemAvailable
	DiskSize uint64
	DiskFree uint64
}

// hostProbe reads the host's free CPU, memory and disk. The CPU figure is the
// idle share between two successive probes, so it is meaningful from the
// second call on (the header is rendered often; the first shows the average
// since boot).
type hostProbe struct {
	runtime     string // containerd runtime in use
	accelerator string // how VM servers run: "kvm", "tcg", or "" where they cannot
	dataDir     string
	procDir     string

	mu             sync.Mutex
	lastIdle, last uint64  // /proc/stat jiffies at the baseline
	lastFree       float64 // the share computed then
}

func (p *hostProbe) facts() hostFacts {
	f := hostFacts{CPUs: runtime.NumCPU()}
	switch {
	case strings.Contains(p.runtime, "kata"):
		f.Runtime, f.VM = "Kata VMs", true
	case strings.Contains(p.runtime, "runc"):
		f.Runtime = "runc containers"
		switch p.accelerator {
		case "kvm":
			f.Warning = "Containers share the host kernel (the Kata runtime is not in use); servers of type VM run under KVM."
		case "tcg":
			f.Warning = "No KVM on this host: containers share the host kernel, and servers of type VM run in software emulation (slow)."
		default:
			f.Warning = "Containers share the host kernel; servers of type VM cannot run here (install qemu-system-x86)."
		}
	default:
		f.Runtime = "no guest runtime"
		f.Warning = "No guest runtime: containerd is not reachable, so servers cannot start. Everything else works."
	}
	f.CPUFree = p.cpuFree()
	f.MemTotal, f.MemFree = p.memory()
	var st unix.Statfs_t
	if unix.Statfs(p.dataDir, &st) == nil {
		f.DiskSize = st.Blocks * uint64(st.Bsize)
		f.DiskFree = st.Bavail * uint64(st.Bsize)
	}
	return f
}

// cpuFree returns the idle share since the previous call, from /proc/stat.
func (p *hostProbe) cpuFree() float64 {
	data, err := os.ReadFile(p.procDir + "/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var total, idle uint64
	for i, s := range fields[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Pages render many times a second; keep the baseline until at least a
	// second of CPU time (100 jiffies) has passed, so the figure is stable.
	dTotal, dIdle := total-p.last, idle-p.lastIdle
	if dTotal < 100 {
		return p.lastFree
	}
	p.last, p.lastIdle = total, idle
	p.lastFree = float64(dIdle) / float64(dTotal)
	return p.lastFree
}

// memory returns MemTotal and MemAvailable in bytes.
func (p *hostProbe) memory() (total, avail uint64) {
	fh, err := os.Open(p.procDir + "/meminfo")
	if err != nil {
		return 0, 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var key string
		var kb uint64
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d", &key, &kb); n != 2 {
			continue
		}
		switch key {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			avail = kb << 10
		}
	}
	return total, avail
}
