package kctl

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

const initDeployYML = `# Name of your application. Used to uniquely configure containers.
service: my-app

# Name of the container image.
image: my-user/my-app

# Deploy to these servers. With kctl these are the names of enrolled agents
# (kctl agents), not SSH hosts: agents dial out to the controllers.
servers:
  web:
    - agent-1
  # job:
  #   hosts:
  #     - agent-2
  #   cmd: bin/jobs

# Enable SSL auto certification via Let's Encrypt (one server per role).
# proxy:
#   ssl: true
#   host: app.example.com

# Credentials for your image host.
registry:
  # server: registry.example.com
  username: my-user
  # Always use an access token rather than a real password (from .kamal/secrets).
  password:
    - KAMAL_REGISTRY_PASSWORD

# Inject ENV variables into containers (secrets come from .kamal/secrets).
env:
  secret:
    - RAILS_MASTER_KEY
  # clear:
  #   DB_HOST: 192.168.0.2

# Configure the image builder.
builder:
  arch: amd64

# Use accessory services (secrets come from .kamal/secrets).
# accessories:
#   db:
#     image: mysql:8.0
#     host: agent-1
#     port: "127.0.0.1:3306:3306"
#     env:
#       secret:
#         - MYSQL_ROOT_PASSWORD
#     directories:
#       - data:/var/lib/mysql
`

const initSecrets = `# Secrets defined here are available for reference under registry/password, env/secret,
# builder/secrets, and accessories/*/env/secret in config/deploy.yml. All secrets should be
# pulled from either password manager, ENV, or a file. DO NOT ENTER RAW CREDENTIALS HERE!
# This file needs to be safe for git.

# Example of extracting secrets from 1password (or another compatible password manager)
# SECRETS=$(kctl secrets fetch --adapter 1password --account your-account --from Vault/Item KAMAL_REGISTRY_PASSWORD RAILS_MASTER_KEY)
# KAMAL_REGISTRY_PASSWORD=$(kctl secrets extract KAMAL_REGISTRY_PASSWORD ${SECRETS})
# RAILS_MASTER_KEY=$(kctl secrets extract RAILS_MASTER_KEY ${SECRETS})

# Use a GITHUB_TOKEN if private repositories are needed for the image
# GITHUB_TOKEN=$(gh config get -h github.com oauth_token)

# Grab the registry password from ENV
KAMAL_REGISTRY_PASSWORD=$KAMAL_REGISTRY_PASSWORD

# Improve security by using a password manager. Never check config/master.key into git!
RAILS_MASTER_KEY=$(cat config/master.key)
`

var initHooks = []string{"docker-setup", "pre-connect", "pre-build", "pre-deploy", "post-deploy", "pre-app-boot", "post-app-boot", "pre-proxy-reboot", "post-proxy-reboot"}

func initHookSample(name string) string {
	return fmt.Sprintf(`#!/bin/sh

# A sample %s hook. kctl runs hooks on the machine you run kctl on.
#
# These environment variables are available:
# KAMAL_RECORDED_AT
# KAMAL_PERFORMER
# KAMAL_VERSION
# KAMAL_HOSTS
# KAMAL_ROLES (if set)
# KAMAL_DESTINATION (if set)
# KAMAL_RUNTIME (post-deploy only)
#
# Rename this file to %s to enable it.

echo "%s: $KAMAL_PERFORMER, $KAMAL_VERSION on $KAMAL_HOSTS"
`, name, name, name)
}

func newInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create config/deploy.yml, .kamal/secrets and sample hooks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			write := func(path, content string, mode os.FileMode) error {
				if _, err := os.Stat(path); err == nil {
					fmt.Fprintf(out, "%s already exists, skipping\n", path)
					return nil
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(path, []byte(content), mode); err != nil {
					return err
				}
				fmt.Fprintf(out, "Created %s\n", path)
				return nil
			}
			if err := write("config/deploy.yml", initDeployYML, 0o644); err != nil {
				return err
			}
			if err := write(".kamal/secrets", initSecrets, 0o644); err != nil {
				return err
			}
			for _, h := range initHooks {
				if err := write(filepath.Join(".kamal/hooks", h+".sample"), initHookSample(h), 0o755); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
