package kctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
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

// listing is what a listing command prints: json for -o json, else a table
// of header and rows.
type listing struct {
	json   any
	header []string
	rows   [][]string
}

// listOf is the listing of items: row gives an item's JSON value and its
// table row.
func listOf[T, J any](items []T, header []string, row func(T) (J, []string)) listing {
	l := listing{header: header}
	js := []J{}
	for _, it := range items {
		j, r := row(it)
		js = append(js, j)
		l.rows = append(l.rows, r)
	}
	l.json = js
	return l
}

func (l listing) print(w io.Writer, o output) error {
	if o == "json" {
		return printJSON(w, l.json)
	}
	return printTable(w, l.header, l.rows)
}

// controllerRPC is a ControllerService method as a method expression, such
// as controllerv1.ControllerServiceClient.ListAgents.
type controllerRPC[Req, Resp any] func(controllerv1.ControllerServiceClient, context.Context, *Req, ...grpc.CallOption) (*Resp, error)

// newControllerListCmd makes a listing command that calls method with an
// empty request on whichever controller answers and prints what show makes
// of the reply.
func newControllerListCmd[Req, Resp any](g *globals, use, short string, method controllerRPC[Req, Resp], show func(*Resp) listing) *cobra.Command {
	return newListCmd(use, short, func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*Resp, error) {
			return method(cc, ctx, new(Req))
		})
		if err != nil {
			return err
		}
		return show(resp).print(g.stdout, o)
	})
}
