package docker_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/kamalconfig/kamalcorpus"
)

// argSep separates the words of a fuzzed argument list.
const argSep = "\x00"

// shellQuote is one single-quoted sh word (a quote inside closes the
// quoting, is escaped with a backslash and reopens it).
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// renderRunArgs renders parsed flags, image and command back as a docker
// run argument list: every flag as one quoted --name=value word.
func renderRunArgs(flags []docker.Flag, image string, cmd []string) []string {
	args := []string{"docker", "run"}
	for _, f := range flags {
		args = append(args, shellQuote("--"+f.Name+"="+f.Value))
	}
	args = append(args, shellQuote(image))
	for _, w := range cmd {
		args = append(args, shellQuote(w))
	}
	return args
}

// FuzzParseRunArgs feeds arbitrary `docker run` argument lists (words
// separated by NUL), seeded with every line of the corpus, through the
// agent's options translation. Properties: nothing panics; Apply fails only
// with ErrUnknownOption or ErrBadOption; and what ParseRunArgs accepts
// round-trips: rendering its flags, image and command back and parsing
// again gives the same flags, image and command.
func FuzzParseRunArgs(f *testing.F) {
	for _, tc := range kamalcorpus.Cases(f) {
		for _, run := range tc.DockerRuns() {
			f.Add(strings.Join(run.Args, argSep))
		}
	}
	for _, seed := range [][]string{
		{"--memory", "1.5g", "--cpus=0.5", "--mount", "type=bind,src=/a,dst=/b,readonly", "img"},
		{"-e", "A=1", "-p", "127.0.0.1:80:80/udp", "--gpus", `"device=0,1"`, "--restart", "on-failure:3", "i", "sh -c 'echo \"$X\"'"},
		{"--privileged", "--init=false", "--no-healthcheck", "--network-alias", "db", "--ip", "10.0.0.2", "x:1"},
	} {
		f.Add(strings.Join(seed, argSep))
	}
	f.Fuzz(func(t *testing.T, in string) {
		args := strings.Split(in, argSep)
		flags, image, cmd, err := docker.ParseRunArgs(args)
		if err != nil {
			return
		}
		if _, err := docker.Apply(flags); err != nil && !errors.Is(err, docker.ErrUnknownOption) && !errors.Is(err, docker.ErrBadOption) {
			t.Fatalf("Apply(%q) = %v, want ErrUnknownOption or ErrBadOption", flags, err)
		}
		rendered := renderRunArgs(flags, image, cmd)
		flags2, image2, cmd2, err := docker.ParseRunArgs(rendered)
		if err != nil {
			t.Fatalf("ParseRunArgs(%q) = %v; it parsed as %q %q %q", rendered, err, flags, image, cmd)
		}
		if !reflect.DeepEqual(flags, flags2) || image != image2 || !reflect.DeepEqual(cmd, cmd2) {
			t.Fatalf("round trip of %q:\n got %q %q %q\nwant %q %q %q", args, flags2, image2, cmd2, flags, image, cmd)
		}
	})
}
