package kctl

import "github.com/spf13/cobra"

// commandFactories make the top-level commands other files add with
// registerCommand (each in its own file, so branches merge cleanly).
var commandFactories []func() *cobra.Command

// registerCommand adds top-level command factories to the root.
func registerCommand(fs ...func() *cobra.Command) {
	commandFactories = append(commandFactories, fs...)
}
