#!/usr/bin/env bash
# Entry point of the epro container image (the Dockerfile's ENTRYPOINT).
# deploy/test-entrypoint.sh runs this same file with the Dockerfile's CMD.
#
#   IMAGE                                  epro serve --config /etc/epro/epro.toml (the CMD)
#   IMAGE migrate --config FILE            any epro subcommand, or an option such as
#                                          --version, runs epro with those arguments
#   IMAGE bash                             anything else runs as a command
#
# epro replaces this shell (exec), so it runs as PID 1 and receives the
# SIGTERM of `docker stop` itself. It has no child processes to reap.
set -euo pipefail

# The SQLite database and the NDJSON outbox hold patient data, so the files
# epro creates are readable by its own user only.
umask 0077

if [ "$#" -eq 0 ]; then
    echo "docker-entrypoint: no command given; the image's default is: serve --config /etc/epro/epro.toml" >&2
    exit 2
fi

case "${1:-}" in
    serve | migrate | forms | trials | staff | outbox | revalidate | export | audit | help | -*)
        set -- epro "$@"
        ;;
esac

# A process running as root in a container is root on the host's files
# that are mounted in, so epro itself never runs as root. The image runs as
# uid 10001; `docker run --user` may choose any other non-root id.
if [ "${1:-}" = epro ] && [ "$EUID" -eq 0 ]; then
    echo "docker-entrypoint: epro must not run as root; run the container as a non-root user" \
        "(the image's default is 10001:10001, or pass --user UID:GID)" >&2
    exit 2
fi

exec "$@"
