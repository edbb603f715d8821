package kctl

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// logsFlags are Kamal's logs options (app, accessory and proxy logs).
type logsFlags struct {
	since, grep, grepOptions, containerID string
	lines                                 int
	follow, skipTimestamps                bool
}

// addLogsFlags adds -s, -n, -g, --grep-options, -f, -T and, for app logs,
// --container-id.
func addLogsFlags(c *cobra.Command, f *logsFlags, containerID bool) {
	fs := c.Flags()
	fs.StringVarP(&f.since, "since", "s", "", "show lines since a timestamp (2013-01-02T13:23:37Z) or a relative time (42m)")
	fs.IntVarP(&f.lines, "lines", "n", 0, "number of lines per host (default 100, 10 with --follow, all with --since or --grep)")
	fs.StringVarP(&f.grep, "grep", "g", "", "show only lines matching this regular expression")
	fs.StringVar(&f.grepOptions, "grep-options", "", "grep's options for --grep (-i, -v, -w, -x, -F)")
	fs.BoolVarP(&f.follow, "follow", "f", false, "follow the logs of every selected host, merged, each line marked with its host")
	fs.BoolVarP(&f.skipTimestamps, "skip-timestamps", "T", false, "leave out docker's timestamps")
	if containerID {
		fs.StringVar(&f.containerID, "container-id", "", "the container to show (default: the role's current one)")
	}
	dashes(c)
}

// request is the logs request for one target, with Kamal's defaults: 100
// lines, 10 when following, all when --since or --grep is given.
func (f *logsFlags) request(cmd *cobra.Command, t streamTarget) *streamv1.LogsRequest {
	lines := uint32(max(f.lines, 0))
	if !cmd.Flags().Changed("lines") {
		switch {
		case f.since != "" || f.grep != "":
			lines = 0
		case f.follow:
			lines = 10
		default:
			lines = 100
		}
	}
	if f.containerID != "" {
		t.target.ContainerId = f.containerID
	}
	return &streamv1.LogsRequest{
		Agent: t.host, Target: t.target, Since: f.since, Lines: lines, Grep: f.grep, GrepOptions: f.grepOptions,
		Follow: f.follow, Timestamps: !f.skipTimestamps,
	}
}

// runLogs shows the logs of every target: grouped per host as Kamal does,
// or, with --follow, merged as they come, each line marked with its host
// when there are several.
func (g *globals) runLogs(cmd *cobra.Command, f *logsFlags, targets []streamTarget) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if !f.follow {
		return eachHost(ctx, stdout, targets, false, func(ctx context.Context, t streamTarget, out io.Writer) error {
			err := g.logsStream(ctx, f.request(cmd, t), out, out)
			if status.Code(err) == codes.NotFound {
				_, err = io.WriteString(out, "Nothing found\n")
			}
			return err
		})
	}
	var mu sync.Mutex
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			w := &linePrefixer{mu: &mu, w: stdout}
			if len(targets) > 1 {
				w.prefix = t.host + " | "
			}
			errs[i] = g.logsStream(ctx, f.request(cmd, t), w, w)
			w.flush()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil // interrupted: the operator stopped following
	}
	_ = stderr
	return errors.Join(errs...)
}
