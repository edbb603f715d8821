# The controller, FROM scratch (make images). Its state lives in the volume
# /var/lib/kctl-controller; it runs as an unprivileged user.
#   docker run -d --name kctl-controller -p 7443:7443 -p 7444:7444 \
#     -v kctl-controller:/var/lib/kctl-controller \
#     -e KCTL_TOKEN=... kctl/controller run --resume --name c2 \
#     --listen 0.0.0.0:7443 --raft-listen 0.0.0.0:7444 \
#     --advertise HOST:7443 --raft-advertise HOST:7444 --join c1.example:7443
FROM scratch
COPY --chown=65532:65532 state/ /var/lib/kctl-controller/
COPY controller /usr/bin/kctl-controller
USER 65532:65532
VOLUME /var/lib/kctl-controller
EXPOSE 7443 7444
ENTRYPOINT ["/usr/bin/kctl-controller"]
CMD ["run", "--resume", "--data-dir", "/var/lib/kctl-controller"]
