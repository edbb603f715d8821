#!/bin/sh
# kctl-agent postinst: create the service's user, reload systemd. Honours
# DPKG_ROOT (dpkg --root --force-script-chrootless).
set -e
if [ "$1" = configure ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers --root="${DPKG_ROOT:-/}" kctl-agent.conf
	fi
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
fi
