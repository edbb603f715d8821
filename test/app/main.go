// Command app is the test application that the runtime and deploy tests
// build into a FROM-scratch image. It serves:
//
//	/up       200 "ok" (or 500 with UNHEALTHY=1)
//	/version  the VERSION environment variable
//	/         "<VERSION>\n"
//	/env/KEY  the value of environment variable KEY (tests check secret env)
//
// As a command (for exec tests): `app serve` (serve, as a worker's cmd), `app echo ARGS…`, `app exit N`, `app cat`
// (stdin to stdout), `app winsize` (the terminal size of stdin, "ROWSxCOLS").
//
// Environment: PORT (default 80), VERSION (default KAMAL_VERSION), START_DELAY (a Go duration to wait
// before listening, a slow boot), UNHEALTHY=1 (fail /up), UNHEALTHY_AFTER (a
// duration after which /up starts failing).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(tool(os.Args[1], os.Args[2:]))
	}
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	version := os.Getenv("VERSION")
	if version == "" {
		version = os.Getenv("KAMAL_VERSION")
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	if d, err := time.ParseDuration(os.Getenv("START_DELAY")); err == nil && d > 0 {
		fmt.Printf("app %s: slow start, waiting %s\n", version, d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
	}
	started := time.Now()
	var unhealthyAfter time.Duration
	if d, err := time.ParseDuration(os.Getenv("UNHEALTHY_AFTER")); err == nil {
		unhealthyAfter = d
	}
	healthy := func() bool {
		if os.Getenv("UNHEALTHY") == "1" {
			return false
		}
		return unhealthyAfter == 0 || time.Since(started) < unhealthyAfter
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if !healthy() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})
	mux.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv(strings.TrimPrefix(r.URL.Path, "/env/")))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("app %s: listening on :%s\n", version, port)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Printf("app %s: shutting down\n", version)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// tool runs the app's small command mode and returns the exit code.
func tool(name string, args []string) int {
	if code, ok := streamTool(name, args); ok {
		return code
	}
	switch name {
	case "serve": // a worker role's cmd: serve as without arguments
		if err := run(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "echo":
		fmt.Println(strings.Join(args, " "))
		return 0
	case "get": // get URL: print the body; exit 1 unless 200 (e2e: requests from inside the network)
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: get URL")
			return 2
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer resp.Body.Close()
		_, _ = io.Copy(os.Stdout, resp.Body)
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintln(os.Stderr, resp.Status)
			return 1
		}
		return 0
	case "exit":
		n := 0
		if len(args) > 0 {
			fmt.Sscan(args[0], &n)
		}
		fmt.Fprintf(os.Stderr, "exiting %d\n", n)
		return n
	case "cat":
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			return 1
		}
		return 0
	case "winsize":
		// Wait until a resize arrives when asked for a particular size.
		want := ""
		if len(args) > 0 {
			want = args[0]
		}
		for i := 0; i < 500; i++ {
			ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
			if err != nil {
				fmt.Println("notty")
				return 1
			}
			got := fmt.Sprintf("%dx%d", ws.Row, ws.Col)
			if want == "" || got == want {
				fmt.Println(got)
				return 0
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("timeout")
		return 1
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n", name)
	return 127
}

// streamTool runs the tools of the stream tests (logs, exec); ok is false
// for another name.
func streamTool(name string, args []string) (code int, ok bool) {
	switch name {
	case "env": // env NAME...: the values, space-separated
		vals := make([]string, len(args))
		for i, a := range args {
			vals[i] = os.Getenv(a)
		}
		fmt.Println(strings.Join(vals, " "))
		return 0, true
	case "sleep": // sleep D: the e2e tests' long-running exec
		d, _ := time.ParseDuration(strings.Join(args, ""))
		time.Sleep(d)
		return 0, true
	case "log": // log WORDS: a line in the container's own log (PID 1's stdout)
		f, err := os.OpenFile("/proc/1/fd/1", os.O_WRONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		defer f.Close()
		fmt.Fprintln(f, strings.Join(args, " "))
		return 0, true
	case "zero": // zero N: N zero bytes on stdout (stream throughput tests)
		var n int64
		fmt.Sscan(strings.Join(args, ""), &n)
		_, err := io.CopyN(os.Stdout, zeros{}, n)
		if err != nil {
			return 1, true
		}
		return 0, true
	case "shell": // a line-at-a-time shell over the other tools (exec -i tests)
		sc := bufio.NewScanner(os.Stdin)
		fmt.Print("$ ")
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 {
				if f[0] == "exit" {
					return tool("exit", f[1:]), true
				}
				tool(f[0], f[1:])
			}
			fmt.Print("$ ")
		}
		return 0, true
	}
	return 0, false
}
