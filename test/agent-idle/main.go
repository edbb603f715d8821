// Command agent-idle is an agent-like process for the memory benchmark: it
// opens the Docker runtime the agent uses, gathers facts about every
// managed container and lists the role's versions (what an agent does when
// it connects), prints "ready", then waits at rest until SIGTERM, gathering
// facts again every few seconds as an agent's heartbeat would.
//
// Usage: agent-idle <data dir> <agent name> <service> <role>
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent-idle:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: agent-idle <data dir> <agent name> <service> <role>")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rt, err := docker.New(docker.Config{DataDir: args[0], AgentName: args[1]})
	if err != nil {
		return err
	}
	beat := func() (int, error) {
		res, err := rt.Do(ctx, &agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}})
		if err != nil {
			return 0, err
		}
		if _, err := rt.Do(ctx, &agentv1.Operation{Op: &agentv1.Operation_ListVersions{ListVersions: &agentv1.ListVersions{Service: args[2], Role: args[3]}}}); err != nil {
			return 0, err
		}
		return len(res.GetFacts().GetContainers()), nil
	}
	n, err := beat()
	if err != nil {
		return err
	}
	fmt.Printf("ready %d\n", n)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := beat(); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}
