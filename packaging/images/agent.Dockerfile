# The agent, FROM scratch (make images). It drives the host's engine through
# its socket, and bind-mounts files from its data dir into kamal-proxy, so
# the data dir must have the same path inside and outside; --pid host lets
# it end an exec by the process's host PID.
#   docker run -d --name kctl-agent --restart unless-stopped --pid host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/kctl-agent:/var/lib/kctl-agent \
#     -e KCTL_TOKEN=... kctl/agent run --name web-1 --controller c1.example:7443
FROM scratch
COPY agent /usr/bin/kctl-agent
ENTRYPOINT ["/usr/bin/kctl-agent"]
CMD ["run", "--data-dir", "/var/lib/kctl-agent"]
