package ctlclient

import "strings"

// MergeAddrs returns the addresses of every list in order, trimmed, without
// empty ones or repeats.
func MergeAddrs(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, a := range l {
			a = strings.TrimSpace(a)
			if a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}
