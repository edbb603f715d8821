package kctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// output is the -o flag of listings.
type output string

func addOutput(cmd *cobra.Command, o *output) {
	cmd.Flags().StringVarP((*string)(o), "output", "o", "table", "table or json")
}

func (o output) check() error {
	if o != "table" && o != "json" {
		return fmt.Errorf("-o must be table or json, not %q", string(o))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// newListCmd makes a listing command with -o table|json; run asks the
// controllers and prints in format o.
func newListCmd(use, short string, run func(cmd *cobra.Command, o output) error) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return run(cmd, o)
		},
	}
	addOutput(cmd, &o)
	return cmd
}
