#!/usr/bin/env bash
# Health check of the epro container image (the Dockerfile's HEALTHCHECK):
# exits 0 when GET /readyz on 127.0.0.1:PORT returns 200, and 1 otherwise.
# /readyz returns 503 while the database is unreachable and once shutdown
# has started.
#
#   docker-healthcheck.sh [PORT]    PORT defaults to 8080, the port of deploy/epro.toml
#
# The image has no curl, so this speaks HTTP over bash's /dev/tcp. A
# configuration that listens on another port needs the health check
# overridden with that port (compose: healthcheck.test).
set -euo pipefail

port=${1:-8080}
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "docker-healthcheck: invalid port \"$port\"; expected a number from 1 to 65535" >&2
    exit 1
fi

# The braces keep bash's own "Connection refused" off stderr; fd 3 stays open.
if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    echo "not ready: nothing accepts connections on 127.0.0.1:$port"
    exit 1
fi
printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3

status_line=
if ! IFS= read -r -t 5 status_line <&3; then
    echo "not ready: no reply from 127.0.0.1:$port/readyz within 5 s"
    exit 1
fi
status_line=${status_line%$'\r'}

case "$status_line" in
    "HTTP/1.1 200 "*)
        echo "ready"
        ;;
    *)
        echo "not ready: /readyz answered \"$status_line\""
        exit 1
        ;;
esac
