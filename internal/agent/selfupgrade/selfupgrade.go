// Package selfupgrade installs agent binaries delivered through the control
// plane beside the packaged one, and supervises the switch to them.
//
// Layout, under the agent's data dir:
//
//	bin/kctl-agent-<sha256>   installed binaries (0755), at most two kept
//	bin/state.json            which one runs (Current), the one before it
//	                          (Previous), the packaged binary's digest when
//	                          they were installed, and whether Current is
//	                          still on trial
//
// The packaged binary (/usr/bin/kctl-agent, what the service starts) is
// never written. When State.Current is set it runs as a tiny supervisor:
// it starts Current as its child and, if a binary on trial exits or does
// not connect within TrialTimeout, rolls back to Previous (or to itself).
// A package upgrade wins: when the packaged binary's digest differs from
// the one recorded at install, the self-upgrade is dropped.
package selfupgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/blobstore"
)

// Environment of a supervised child.
const (
	// ChildEnv is set (to the packaged binary's path) in a child the
	// supervisor starts.
	ChildEnv = "KCTL_AGENT_SUPERVISED"
	// ExitRestart is the exit code with which a child asks its supervisor
	// to start the (newly installed) current binary.
	ExitRestart = 75
)

// TrialTimeout is how long a new binary has to connect (Commit) before the
// supervisor rolls it back.
var TrialTimeout = 60 * time.Second

// State is bin/state.json.
type State struct {
	Current  string `json:"current,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Packaged is the packaged binary's digest when Current was installed.
	Packaged string `json:"packaged,omitempty"`
	Trial    bool   `json:"trial,omitempty"`
}

func binDir(dataDir string) string { return filepath.Join(dataDir, "bin") }

// Binary is the path of an installed binary.
func Binary(dataDir, digest string) string {
	return filepath.Join(binDir(dataDir), "kctl-agent-"+digest)
}

// Load reads the state; a missing file is the zero State.
func Load(dataDir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(binDir(dataDir), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("selfupgrade: %s: %w", filepath.Join(binDir(dataDir), "state.json"), err)
	}
	for _, d := range []string{st.Current, st.Previous, st.Packaged} {
		if d != "" && !blobstore.ValidDigest(d) {
			return State{}, fmt.Errorf("selfupgrade: %s is damaged (%q is not a SHA-256 digest): remove it to run the packaged agent", filepath.Join(binDir(dataDir), "state.json"), d)
		}
	}
	return st, nil
}

// Save writes the state atomically.
func Save(dataDir string, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(binDir(dataDir), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(binDir(dataDir), "state.json"), b, 0o600)
}

// FileDigest is the SHA-256 of a file, in hex.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Packaged is the packaged binary's path: the supervisor's (from ChildEnv)
// in a child, else this process's executable.
func Packaged() (string, error) {
	if p := os.Getenv(ChildEnv); p != "" {
		return p, nil
	}
	return os.Executable()
}

// Install writes the binary from r, verifies its size and digest, checks
// that it runs (`<binary> version` prints "agent <version>"), and makes it
// Current on trial. It returns the binary's version. Installing the
// current digest again changes nothing.
func Install(ctx context.Context, dataDir, digest string, size int64, r io.Reader) (string, error) {
	st, err := Load(dataDir)
	if err != nil {
		return "", err
	}
	dst := Binary(dataDir, digest)
	if _, err := os.Stat(dst); err != nil {
		if err := write(dataDir, dst, digest, size, r); err != nil {
			return "", err
		}
	}
	version, err := versionOf(ctx, dst)
	if err != nil {
		_ = os.Remove(dst)
		return "", err
	}
	if st.Current == digest {
		return version, nil
	}
	pkg, err := Packaged()
	if err != nil {
		return "", err
	}
	pd, err := FileDigest(pkg)
	if err != nil {
		return "", fmt.Errorf("selfupgrade: the packaged binary: %w", err)
	}
	if err := Save(dataDir, State{Current: digest, Previous: st.Current, Packaged: pd, Trial: true}); err != nil {
		return "", err
	}
	return version, nil
}

func write(dataDir, dst, digest string, size int64, r io.Reader) error {
	if err := os.MkdirAll(binDir(dataDir), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(binDir(dataDir), ".new-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("selfupgrade: download: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != digest {
		return fmt.Errorf("selfupgrade: the binary does not match its digest (%d bytes hashing to %s, want %d bytes, %s)", n, got, size, digest)
	}
	if err := os.Chmod(f.Name(), 0o755); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// versionOf runs `bin version` and returns the version it prints.
func versionOf(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("selfupgrade: the new binary does not run here (`version`: %v): wrong architecture or not an agent", err)
	}
	name, v, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || name != "agent" || v == "" {
		return "", fmt.Errorf("selfupgrade: the new binary is not an agent (`version` printed %q)", strings.TrimSpace(string(out)))
	}
	return v, nil
}

// Commit ends the trial of the running binary (it connected) and removes
// installed binaries other than Current and Previous.
func Commit(dataDir, digest string) error {
	st, err := Load(dataDir)
	if err != nil || st.Current != digest || !st.Trial {
		return err
	}
	st.Trial = false
	if err := Save(dataDir, st); err != nil {
		return err
	}
	ents, _ := os.ReadDir(binDir(dataDir))
	for _, e := range ents {
		d, ok := strings.CutPrefix(e.Name(), "kctl-agent-")
		if ok && d != st.Current && d != st.Previous {
			_ = os.Remove(filepath.Join(binDir(dataDir), e.Name()))
		}
	}
	return nil
}

// Rollback makes Previous current again (none: the packaged binary).
func Rollback(dataDir string) (State, error) {
	st, err := Load(dataDir)
	if err != nil {
		return st, err
	}
	st = State{Current: st.Previous, Packaged: st.Packaged}
	return st, Save(dataDir, st)
}
