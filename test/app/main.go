// Command app is the test application that the runtime and deploy tests
// build into a FROM-scratch image. It serves:
//
//	/up       200 "ok" (or 500 with UNHEALTHY=1)
//	/version  the VERSION environment variable
//	/         "<VERSION>\n"
//	/env/KEY  the value of environment variable KEY (tests check secret env)
//
// Environment: PORT (default 80), VERSION (default KAMAL_VERSION), START_DELAY (a Go duration to wait
// before listening, a slow boot), UNHEALTHY=1 (fail /up), UNHEALTHY_AFTER (a
// duration after which /up starts failing).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
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
