package containerd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hearth/vmm/guest"
	"hearth/vmm/kata"
)

// maxSocketPath is the kernel's limit for a unix socket path (sun_path, less the NUL).
const maxSocketPath = 107

// daemon is the private containerd child process Hearth runs when no socket
// is given, laid out like k3s does: config, socket, root and state under one
// directory (DATA/containerd). Guests outlive it: their shims are separate
// processes, so the daemon may be restarted or stopped while they run.
type daemon struct {
	dir    string
	config string
	socket string
	log    *slog.Logger
	quit   chan struct{}   // closed by stop
	done   chan struct{}   // closed when the supervisor has let go of the child for good
	spawns chan chan error // to the goroutine that starts the child from its own thread

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited; waitErr says how
	waitErr   error
	restarted func() // called after the daemon came back
}

// containerdConfig is the config of the private daemon. CRI stays enabled so
// the runtimes table means what it does under k3s (the Kubernetes path of the
// Kubernetes path); Hearth itself passes Kata's annotations directly in the spec.
func containerdConfig(dir string) string {
	q := strconv.Quote
	return fmt.Sprintf(`# Written by Hearth at every start; edits are lost.
version = 2
root = %s
state = %s

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = %s

%s`, q(filepath.Join(dir, "root")), q(filepath.Join(dir, "state")),
		q(filepath.Join(dir, "containerd.sock")), q(filepath.Join(dir, "containerd.sock.ttrpc")),
		q(filepath.Join(dir, "opt")), q(RuntimeRunc), kata.ContainerdCRIRuntime("kata"))
}

// startDaemon writes the config, stops a daemon an earlier (killed) Hearth
// left behind on the same directory, starts containerd and waits until its
// socket answers.
func startDaemon(dir string, log *slog.Logger) (*daemon, error) {
	d := &daemon{
		dir:    dir,
		config: filepath.Join(dir, "config.toml"),
		socket: filepath.Join(dir, "containerd.sock"),
		log:    log,
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		spawns: make(chan chan error),
	}
	go d.spawner()
	if len(d.socket) > maxSocketPath {
		return nil, fmt.Errorf("containerd socket path %s is longer than %d bytes: %w", d.socket, maxSocketPath, guest.ErrInvalid)
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, fmt.Errorf("containerd binary not on PATH: %w", guest.ErrUnavailable)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.config, []byte(containerdConfig(dir)), 0o600); err != nil {
		return nil, err
	}
	d.stopStale()
	if err := d.spawn(); err != nil {
		return nil, err
	}
	go d.supervise()
	if err := d.waitReady(20 * time.Second); err != nil {
		d.stop()
		return nil, fmt.Errorf("%w: containerd did not come up (see %s): %w", guest.ErrUnavailable, filepath.Join(dir, "containerd.log"), err)
	}
	return d, nil
}

func (d *daemon) pidFile() string { return filepath.Join(d.dir, "containerd.pid") }

// stopStale ends the containerd a previous Hearth process started on this
// directory (it survives Hearth being killed). Its guests keep running.
func (d *daemon) stopStale() {
	b, err := os.ReadFile(d.pidFile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !d.isOurs(pid) {
		return
	}
	d.log.Warn("containerd: stopping a daemon an earlier Hearth left", "pid", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !d.isOurs(pid) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && d.isOurs(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// isOurs reports whether pid is a live containerd started with our config.
func (d *daemon) isOurs(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
		return false // a zombie our own supervisor has not reaped yet
	}
	return bytes.Contains(cmdline, []byte(d.config))
}

// spawner starts every containerd child from one OS thread that lives as
// long as Hearth: the child's parent-death signal is tied to the thread that
// forked it, and Go ends threads that a goroutine left locked (the network
// code switching namespaces does), which would stop containerd for nothing.
func (d *daemon) spawner() {
	runtime.LockOSThread() // never unlocked: this thread stays
	for reply := range d.spawns {
		reply <- d.start()
	}
}

func (d *daemon) spawn() error {
	reply := make(chan error)
	d.spawns <- reply
	return <-reply
}

func (d *daemon) start() error {
	logFile, err := os.OpenFile(filepath.Join(d.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("containerd", "--config", d.config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Readiness to systemd is Hearth's to report, not its child's.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NOTIFY_SOCKET=") })
	// Its own process group: a Ctrl-C meant for Hearth must not reach it.
	// It ends when Hearth does, however Hearth ends (the shims, and so the
	// guests, stay): a restarted Hearth then finds DATA/containerd free.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	os.WriteFile(d.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited = cmd, exited
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(exited)
	}()
	return nil
}

// waitReady waits until the daemon's socket accepts connections, and fails
// at once when the daemon exits first (a bad config, a busy root).
func (d *daemon) waitReady(timeout time.Duration) error {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", d.socket, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			d.mu.Lock()
			defer d.mu.Unlock()
			return fmt.Errorf("containerd exited: %v", d.waitErr)
		case <-d.quit:
			return errors.New("stopping")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// supervise restarts the daemon whenever it dies, backing off from one second
// up to thirty while it keeps dying young.
func (d *daemon) supervise() {
	defer close(d.done)
	backoff := time.Second
	for {
		d.mu.Lock()
		exited := d.exited
		d.mu.Unlock()
		started := time.Now()
		select {
		case <-exited:
		case <-d.quit:
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		d.mu.Lock()
		err := d.waitErr
		d.mu.Unlock()
		d.log.Warn("containerd: exited; restarting", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-d.quit:
			return
		}
		backoff = min(backoff*2, 30*time.Second)
		if err := d.spawn(); err != nil {
			d.log.Error("containerd: restart", "err", err)
			continue
		}
		if err := d.waitReady(20 * time.Second); err != nil {
			d.log.Error("containerd: restarted but not answering", "err", err)
			continue
		}
		d.log.Info("containerd: restarted", "pid", d.pid())
		d.mu.Lock()
		restarted := d.restarted
		d.mu.Unlock()
		if restarted != nil {
			restarted()
		}
	}
}

func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// stop ends the daemon (SIGTERM, SIGKILL after ten seconds). Shims and their
// guests are separate processes and keep running.
func (d *daemon) stop() {
	close(d.quit)
	<-d.done
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	os.Remove(d.pidFile())
}
