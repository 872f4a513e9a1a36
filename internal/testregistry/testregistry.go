// Package testregistry runs the real distribution registry (Debian's
// docker-registry) on a free loopback port for end-to-end tests: no auth,
// throwaway storage, an access log a test can read. It is test support;
// kiln itself never starts a registry.
package testregistry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Registry is a running docker-registry.
type Registry struct {
	Addr string // 127.0.0.1:PORT
	Log  string // the registry's log file (one line per request)
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin (docker-registry) with its storage and config under dir
// and waits, at most 10 s, until it answers /v2/.
func Start(bin, dir string) (*Registry, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	var errs []error
	for attempt := 0; attempt < 3; attempt++ { // another process may take the port between probe and bind
		r, err := try(bin, dir, attempt)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func try(bin, dir string, attempt int) (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	config := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
	// The registry names itself in a response header, so a registry of
	// another test that took the port between the probe and the bind is
	// never mistaken for this one.
	nonce := fmt.Sprintf("%d-%d-%d", os.Getpid(), time.Now().UnixNano(), attempt)
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  headers:\n    X-Kiln-Test-Registry: [%q]\n",
		filepath.Join(dir, "data"), addr, nonce)
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	r := &Registry{Addr: addr, Log: logPath, cmd: exec.Command(bin, "serve", config), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	dieWithParent(r.cmd)
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { r.cmd.Wait(); close(r.done) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return nil, fmt.Errorf("docker-registry on %s exited: %s", addr, tail(logPath))
		default:
		}
		if resp, err := client.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if resp.Header.Get("X-Kiln-Test-Registry") != nonce {
					r.Stop()
					return nil, fmt.Errorf("another registry answers on %s", addr)
				}
				return r, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Stop()
	return nil, fmt.Errorf("docker-registry on %s did not answer /v2/ within 10s: %s", addr, tail(logPath))
}

// Stop ends the registry.
func (r *Registry) Stop() {
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
