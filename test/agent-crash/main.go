// Command agent-crash is a broken agent build for the self-upgrade tests:
// `version` answers like an agent, anything else exits 3 at once, as a
// build that fails at start would.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("agent crash-at-start")
		return
	}
	fmt.Fprintln(os.Stderr, "agent-crash: failing at start")
	os.Exit(3)
}
