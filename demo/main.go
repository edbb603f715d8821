// Command demo is the sample app that `make demo` deploys with kctl: a tiny
// web server that answers with its version, a configured greeting and
// whether the secret from .kamal/secrets reached it.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	version := os.Getenv("KAMAL_VERSION")
	http.HandleFunc("/up", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		secret := "missing"
		if os.Getenv("DEMO_SECRET") != "" {
			secret = "present"
		}
		fmt.Fprintf(w, "%s from %s, version %s (secret %s)\n", os.Getenv("GREETING"), os.Getenv("KAMAL_CONTAINER_NAME"), version, secret)
	})
	log.Printf("demo %s listening on :80", version)
	log.Fatal(http.ListenAndServe(":80", nil))
}
