package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The sandbox is kiln re-executing itself as the first process of new
// user, mount, pid, network, ipc and uts namespaces. That process (the
// sandbox init) mounts /proc in the image's root, makes that root its mount
// namespace's (pivot_root: the host's files are gone, not just out of
// sight), brings up loopback, serves DNS on it, sets rlimits and then runs
// the image's binary as an unprivileged user mapped through the user
// namespace. It reports back on a
// pipe. When it exits, the pid namespace ends and every process in it dies.

const sandboxEnv = "KILN_VERIFY_SANDBOX"

// SandboxInit is the sandbox's entry point, entered explicitly as moby's
// pkg/reexec is: a program whose run.* checks may start the sandbox calls it
// first thing in main (a test binary, in TestMain), and exits with the code
// when ok is true, because then this process is the sandbox init that
// kiln's own executable was re-run as; otherwise it returns at once.
//
//	if code, ok := verify.SandboxInit(); ok {
//		os.Exit(code)
//	}
//
// A program that never calls it cannot be the sandbox: run.* is skipped
// there, naming this function, instead of re-running that program's main.
func SandboxInit() (code int, ok bool) {
	sandboxEntry.Store(true)
	if os.Getenv(sandboxEnv) != "1" || len(os.Args) == 0 || os.Args[0] != "kiln-sandbox" {
		return 0, false
	}
	return sandboxMain(), true
}

// sandboxEntry records that this program calls SandboxInit, so a re-run
// of it reaches the sandbox rather than its own main.
var sandboxEntry atomic.Bool

// selfImage is a copy of kiln's own executable in a memfd. The sandbox
// init runs as an unprivileged host id, which may not reach kiln's binary
// through its path (a 0700 home or temp directory); /proc/self/fd/N of the
// copy needs no path.
var selfImage = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding kiln's own executable: %w", err)
	}
	// When the path is open to everyone (kiln installed in /usr/local/bin),
	// run it from there: copying a 100 MB binary costs more than the run.
	if st, err := os.Stat(self); err == nil && st.Mode().Perm()&0o001 != 0 && traversable(filepath.Dir(self)) {
		return self, nil
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("kiln-sandbox", unix.MFD_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("creating a memfd for the sandbox: %w", err)
	}
	f := os.NewFile(uintptr(fd), "kiln-sandbox")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return "", fmt.Errorf("copying kiln into a memfd: %w", err)
	}
	if err := f.Chmod(0o555); err != nil {
		f.Close()
		return "", err
	}
	// f stays open for the life of the process: its fd is the path.
	memfds = append(memfds, f)
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
})

var memfds []*os.File

// runSandbox starts the sandbox init and returns its report.
func runSandbox(ctx context.Context, cfg sandboxConfig) (*sandboxResult, error) {
	if !sandboxEntry.Load() {
		return nil, errors.New("this program does not call verify.SandboxInit at the start of main, so it cannot re-run itself as the sandbox")
	}
	self, err := selfImage()
	if err != nil {
		return nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, err
	}
	limit := time.Duration(max(cfg.Runs, 1)/max(cfg.Parallel, 1)+1)*(cfg.Timeout+2*time.Second) + 10*time.Second
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	cmd.Args = []string{"kiln-sandbox"}
	cmd.Env = []string{sandboxEnv + "=1", "PATH=/usr/bin:/bin"}
	cmd.ExtraFiles = []*os.File{cfgR, resW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if os.Geteuid() == 0 {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostIDBase, Size: 65536}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostIDBase, Size: 65536}}
		attr.GidMappingsEnableSetgroups = true
		// The child starts as host root, which the mapping leaves out;
		// becoming the namespace's root (host hostIDBase) is what gives it
		// its capabilities there, and nothing on the host.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
	} else {
		cfg.Unprivileg = true
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		cfgR.Close()
		cfgW.Close()
		resR.Close()
		resW.Close()
		return nil, fmt.Errorf("starting the sandbox (user namespaces): %w", err)
	}
	cfgR.Close()
	resW.Close()
	go func() {
		_ = json.NewEncoder(cfgW).Encode(cfg)
		cfgW.Close()
	}()
	out, _ := io.ReadAll(io.LimitReader(resR, 64<<20))
	resR.Close()
	werr := cmd.Wait()
	var res sandboxResult
	if err := json.Unmarshal(out, &res); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the sandbox did not finish within %s", limit)
		}
		return nil, fmt.Errorf("the sandbox failed (%v): %s", werr, bytes.TrimSpace(stderr.Bytes()))
	}
	return &res, nil
}

// sandboxMain is the sandbox init. It returns its exit code.
func sandboxMain() int {
	// The pipes to kiln arrive without close-on-exec; the image's binary,
	// which this process starts, must not inherit them (it could write
	// its own report).
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	cfgFile, resFile := os.NewFile(3, "config"), os.NewFile(4, "result")
	var cfg sandboxConfig
	res := &sandboxResult{}
	report := func() int {
		_ = json.NewEncoder(resFile).Encode(res)
		resFile.Close()
		return 0
	}
	if err := json.NewDecoder(cfgFile).Decode(&cfg); err != nil {
		res.Setup = "reading the sandbox config: " + err.Error()
		return report()
	}
	if err := setupSandbox(&cfg); err != nil {
		res.Setup = err.Error()
		return report()
	}
	var dns *dnsServer
	if cfg.DNS {
		var err error
		if dns, err = startDNS("127.0.0.1:53"); err != nil {
			res.Setup = "starting the DNS server on 127.0.0.1:53: " + err.Error()
			return report()
		}
	}
	res.Runs = make([]runResult, max(cfg.Runs, 1))
	sem := make(chan struct{}, max(cfg.Parallel, 1))
	var wg sync.WaitGroup
	for i := range res.Runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			res.Runs[i] = runOnce(&cfg)
			<-sem
		}()
	}
	wg.Wait()
	if dns != nil {
		dns.close()
		res.DNSQueries, res.DNSAnswers = dns.queries.Load(), dns.answered.Load()
		res.DNSSeen = dns.observed()
	}
	return report()
}

// setupSandbox prepares the namespaces: private mounts, /proc and a few
// device nodes in the image root, the image root as the mount
// namespace's root, loopback up, rlimits.
func setupSandbox(cfg *sandboxConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(cfg.Root, cfg.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the image root: %w", err)
	}
	if err := unix.Mount("proc", filepath.Join(cfg.Root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc in the image root: %w", err)
	}
	for _, d := range cfg.Devices {
		if err := unix.Mount(d, filepath.Join(cfg.Root, d), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s: %w", d, err)
		}
	}
	if err := pivotRoot(cfg.Root); err != nil {
		return fmt.Errorf("making the image root the sandbox's root: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	limits := []struct {
		res int
		val uint64
	}{
		{unix.RLIMIT_CPU, uint64(max(cfg.Timeout, time.Second).Seconds())*4 + 10},
		{unix.RLIMIT_NPROC, 512},
		{unix.RLIMIT_NOFILE, 1024},
		{unix.RLIMIT_FSIZE, 256 << 20},
		{unix.RLIMIT_CORE, 0},
	}
	if cfg.LimitMem {
		limits = append(limits, struct {
			res int
			val uint64
		}{unix.RLIMIT_DATA, 4 << 30})
	}
	for _, l := range limits {
		lim := unix.Rlimit{Cur: l.val, Max: l.val}
		if err := unix.Setrlimit(l.res, &lim); err != nil {
			return fmt.Errorf("setting rlimit %d: %w", l.res, err)
		}
	}
	return nil
}

// pivotRoot makes root this mount namespace's root and detaches the
// host's. A chroot alone would leave the host's files in the namespace,
// one step away for a binary that is root there: through /proc/1/root
// (this process's root), or a second chroot.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// With both arguments ".", the old root ends up mounted over the new
	// one, and unmounting "." detaches it (runc does the same).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	return unix.Chdir("/")
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// runOnce runs the binary once in the image root as the image user.
func runOnce(cfg *sandboxConfig) runResult {
	r := runResult{Exit: -1}
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Path = cfg.Argv[0] // resolved inside the image root by execve, not on the host
	cmd.Env = cfg.Env
	cmd.Dir = cfg.Dir
	stdout := &capped{max: cfg.MaxOutput}
	stderr := &capped{max: cfg.MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A process the binary detached (setsid) may hold its stdout long
	// after the binary is gone; the run ends with the binary, and the pid
	// namespace ends the rest when the sandbox init exits.
	cmd.WaitDelay = 500 * time.Millisecond
	// No chroot: setupSandbox made the image root this namespace's root.
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if !cfg.Unprivileg {
		groups := []uint32{}
		for _, g := range cfg.Groups {
			groups = append(groups, uint32(g))
		}
		attr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: groups}
	}
	cmd.SysProcAttr = attr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.StartErr = err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			r.StartErr = errno.Error()
		}
		return r
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(cfg.Timeout):
		r.Running = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	r.Millis = float64(time.Since(start).Microseconds()) / 1000
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		r.Exit = ws.ExitStatus()
	case ws.Signaled() && !r.Running:
		r.Signal = ws.Signal().String()
	}
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	return r
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
