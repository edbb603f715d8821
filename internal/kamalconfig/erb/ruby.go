package erb

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const rubyDotenvShim = `module Dotenv
  def self.parse_files(files)
    files = [".env"] if files.empty?
    files.flatten.each_with_object({}) do |f, h|
      next unless File.exist?(f)
      File.readlines(f).each do |line|
        next if line =~ /\A\s*(#|\z)/
        k, v = line.chomp.sub(/\A\s*export\s+/, "").split("=", 2)
        next unless v
        v = v.strip
        v = v[1..-2] if v.length >= 2 && ((v.start_with?('"') && v.end_with?('"')) || (v.start_with?("'") && v.end_with?("'")))
        h[k.strip] = v
      end
    end
  end
  def self.load(*files)
    parse_files(files).each { |k, v| ENV[k] ||= v }
  end
  def self.overload(*files)
    parse_files(files).each { |k, v| ENV[k] = v }
  end
  def self.load!(*files)
    load(*files)
  end
end
`

const rubyRenderScript = `
# ARGV[0] names the template; ARGV[1], present only when the caller set
# Options.ShellStub, replaces every backtick and %x() command's output.
if ARGV.length > 1
  $kctl_shell_stub = ARGV[1]
  module Kernel
    def ` + "`" + `(_cmd)
      $kctl_shell_stub.dup
    end
  end
end
src = STDIN.read.force_encoding("UTF-8")
erb = ERB.new(src, trim_mode: "-")
erb.filename = ARGV[0]
begin
  out = erb.result(TOPLEVEL_BINDING.dup)
  STDOUT.write(out)
rescue Exception => e
  line = (e.backtrace || []).map { |l| l[/\A#{Regexp.escape(ARGV[0])}:(\d+)/, 1] }.compact.first
  if e.is_a?(SyntaxError) && line.nil?
    line = e.message[/#{Regexp.escape(ARGV[0])}:(\d+)/, 1]
  end
  STDERR.write("KCTL-ERB-ERROR\t#{e.class}\t#{line}\t#{e.message.to_s.lines.first.to_s.chomp}\n")
  exit 1
end
`

func renderRuby(src []byte, e *Options) ([]byte, error) {
	shimDir, err := os.MkdirTemp("", "kctl-erb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(shimDir)
	if err := os.WriteFile(filepath.Join(shimDir, "dotenv.rb"), []byte(rubyDotenvShim), 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Ruby, "-E", "UTF-8:UTF-8", "-I", shimDir, "-rerb", "-e", rubyRenderScript, e.File)
	if e.ShellStub != nil {
		cmd.Args = append(cmd.Args, *e.ShellStub)
	}
	cmd.Dir = e.Dir
	cmd.Stdin = bytes.NewReader(src)
	env := make([]string, 0, len(e.Env)+4)
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		env = append(env, k+"="+e.Env[k])
	}
	for _, k := range []string{"PATH", "HOME"} {
		if _, ok := e.Env[k]; !ok {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "KCTL-ERB-ERROR\t"); ok {
				parts := strings.SplitN(rest, "\t", 3)
				if len(parts) == 3 {
					line, _ := strconv.Atoi(parts[1])
					return nil, &rubyError{class: parts[0], msg: parts[2], line: line}
				}
			}
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return nil, fmt.Errorf("ruby failed to render the template: %v: %s", err, msg)
	}
	return stdout.Bytes(), nil
}
