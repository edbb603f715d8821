package kctl

import "github.com/spf13/cobra"

var commandFactories []func() *cobra.Command

func registerCommand(fs ...func() *cobra.Command) { commandFactories = append(commandFactories, fs...) }
