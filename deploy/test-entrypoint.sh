#!/usr/bin/env bash
# Tests the container image's entry point without Docker. It lays out the
# image's files in a temporary directory: the release binary, the scripts
# the Dockerfile copies, deploy/epro.toml as the mounted configuration, the
# demo trial and an empty data volume. Then it runs the Dockerfile's
# ENTRYPOINT with its CMD as its USER, with each absolute path moved under
# that directory. Reading those lines from the Dockerfile keeps the image
# and this test from drifting apart.
#
#   deploy/test-entrypoint.sh [EPRO_BINARY]     (or TEST_EPRO_BIN=EPRO_BINARY)
#
# It checks the entry point's guards first: no command, root, and a bad
# configuration, whose error must name the key. Then it starts epro as the
# image's user on 127.0.0.1, on a port the kernel picks, and checks the
# health check script, a PHQ-9 submission and its replay, and the data
# files' owner and mode. SIGTERM must end epro with status 0 within the
# systemd unit's TimeoutStopSec, and after a restart the submission must
# read back from the data volume. Last, it verifies
# deploy/systemd/epro.service with systemd-analyze. When
# TEST_EPRO_POSTGRES_URL and TEST_EPRO_AMQP_URL are set (.ci/services sets
# them), it also runs the compose example's configuration against that
# PostgreSQL and RabbitMQ.
#
# Run as root, it starts epro through setpriv as the Dockerfile's uid and
# gid. Run as another user, it starts epro as that user. Every wait is
# bounded, and on exit it kills only the servers it started, by pid.
set -euo pipefail
# The image's directories must be readable by its user, whatever the
# caller's umask.
umask 022

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=$repo/Dockerfile
unit=$repo/deploy/systemd/epro.service

passed=0
server_pid=
server_log=
work=
database_to_drop=
queue_to_delete=

pass() {
    passed=$((passed + 1))
    echo "ok: $*"
}

fail() {
    echo "FAIL: $*" >&2
    if [ -n "$server_log" ] && [ -s "$server_log" ]; then
        echo "--- last lines of the server log $server_log:" >&2
        tail -n 20 "$server_log" >&2
    fi
    echo "entrypoint: $passed passed, 1 failed" >&2
    exit 1
}

cleanup() {
    # The server runs in a process group of its own (setsid), so this also
    # ends any process an entry point that failed to exec left behind.
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL -- "-$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$database_to_drop" ]; then
        psql "$TEST_EPRO_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$database_to_drop\"" >/dev/null 2>&1 ||
            echo "note: could not drop the test database $database_to_drop" >&2
    fi
    if [ -n "$queue_to_delete" ]; then
        rabbitmqctl -q delete_queue "$queue_to_delete" >/dev/null 2>&1 ||
            echo "note: could not delete the RabbitMQ queue $queue_to_delete (rabbitmqctl failed)" >&2
    fi
    if [ -n "$work" ]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# --- Inputs -----------------------------------------------------------------

binary=${1:-${TEST_EPRO_BIN:-}}
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    echo "usage: $0 EPRO_BINARY (or TEST_EPRO_BIN=EPRO_BINARY); \"$binary\" is not an executable file" >&2
    echo "build it with: cargo build --release --locked -p epro" >&2
    exit 2
fi
binary=$(realpath "$binary")
for tool in curl jq setpriv setsid realpath stat timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# Prints the arguments of the last instance of an instruction, which is the
# one that counts in Docker.
instruction() {
    { grep -E "^$1 " "$dockerfile" || true; } | tail -n 1 | cut -d' ' -f2-
}

# Fails unless the instruction NAME's JSON is an exec-form array of strings.
check_exec_form() {
    local name=$1 json=$2
    jq -e 'type == "array" and length > 0 and all(type == "string")' <<<"$json" >/dev/null 2>&1 ||
        fail "the Dockerfile's $name is not in exec form (a JSON array of strings): \"$json\""
}

# Prints the source of the COPY from the build context to DESTINATION.
copy_source() {
    awk -v destination="$1" '$1 == "COPY" && $0 !~ /--from=/ && $NF == destination { print $(NF - 1) }' "$dockerfile" |
        tail -n 1
}

entrypoint_json=$(instruction ENTRYPOINT)
cmd_json=$(instruction CMD)
healthcheck_json=$(sed -n '/^HEALTHCHECK/,/CMD/p' "$dockerfile" | { grep -o 'CMD \[.*\]' || true; } | cut -c5-)
check_exec_form ENTRYPOINT "$entrypoint_json"
check_exec_form CMD "$cmd_json"
check_exec_form "HEALTHCHECK CMD" "$healthcheck_json"
mapfile -t entrypoint < <(jq -r '.[]' <<<"$entrypoint_json")
mapfile -t cmd < <(jq -r '.[]' <<<"$cmd_json")
mapfile -t healthcheck < <(jq -r '.[]' <<<"$healthcheck_json")
user=$(instruction USER)
[[ "$user" =~ ^([0-9]+):([0-9]+)$ ]] || fail "the Dockerfile's USER is \"$user\"; expected a numeric UID:GID"
uid=${BASH_REMATCH[1]}
gid=${BASH_REMATCH[2]}
[ "$uid" -ne 0 ] || fail "the Dockerfile's USER is root"
binary_destination=$(awk '$1 == "COPY" && /--from=build/ { print $NF }' "$dockerfile" | tail -n 1)
[ "$binary_destination" = /usr/local/bin/epro ] ||
    fail "the Dockerfile copies the binary to \"$binary_destination\", not /usr/local/bin/epro on the PATH"
[ "${#cmd[@]}" -eq 3 ] || fail "the Dockerfile's CMD is \"${cmd[*]}\"; this test expects: serve --config FILE"
[ "${cmd[0]} ${cmd[1]}" = "serve --config" ] ||
    fail "the Dockerfile's CMD is \"${cmd[*]}\"; this test expects: serve --config FILE"
grep -qx 'VOLUME /var/lib/epro' "$dockerfile" || fail "the Dockerfile declares no VOLUME /var/lib/epro"
grep -qx 'WORKDIR /var/lib/epro' "$dockerfile" || fail "the Dockerfile's last WORKDIR is not /var/lib/epro"
pass "Dockerfile: ENTRYPOINT ${entrypoint[*]}, CMD ${cmd[*]}, USER $uid:$gid"

# --- The image's files under $root ------------------------------------------

work=$(mktemp -d)
chmod 0755 "$work"
root=$work/root

install -D -m 0755 "$binary" "$root/usr/local/bin/epro"
for destination in "${entrypoint[0]}" "${healthcheck[0]}"; do
    copied_from=$(copy_source "$destination")
    [ -n "$copied_from" ] || fail "the Dockerfile has no COPY from the build context to $destination"
    install -D -m 0755 "$repo/$copied_from" "$root$destination"
done

config=${cmd[2]}
install -d -m 0755 "$(dirname "$root$config")"
# The README runs the image with deploy/epro.toml. Its data paths are moved
# into the test's data volume.
sed "s#/var/lib/epro#$root/var/lib/epro#g" "$repo/deploy/epro.toml" >"$root$config"
chmod 0644 "$root$config"
grep -q "sqlite://$root/var/lib/epro/epro.db" "$root$config" ||
    fail "deploy/epro.toml does not keep its SQLite database in /var/lib/epro"
install -d -m 0755 "$root/etc/epro/trials"
cp -R "$repo/examples/trials/demo" "$root/etc/epro/trials/demo"
chmod -R a+rX "$root/etc/epro/trials"

data=$root/var/lib/epro
install -d -m 0700 "$data"

if [ "$EUID" -eq 0 ]; then
    chown "$uid:$gid" "$data"
    as_image_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups --)
    expected_uid=$uid
else
    as_image_user=()
    expected_uid=$EUID
    echo "note: not root, so epro runs as uid $EUID rather than the image's $uid"
fi

# The image's ENTRYPOINT and CMD with every absolute path under $root.
image_command=()
for argument in "${entrypoint[@]}" "${cmd[@]}"; do
    if [[ "$argument" == /* ]]; then image_command+=("$root$argument"); else image_command+=("$argument"); fi
done

# The container's environment: the PATH of debian:bookworm-slim with the
# image's directories moved under $root, and the overrides a deployment
# sets. Port 0: the kernel picks a free port, and epro logs it.
container_env=(
    env -i "PATH=$root/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    "EPRO_HTTP__LISTEN=127.0.0.1:0"
)

# Runs "$@" as the container would, in the data volume, bounded to 30 s.
run_in_container() {
    (cd "$data" && exec timeout 30 "${container_env[@]}" "$@")
}

# --- The entry point's guards -----------------------------------------------

output=$(run_in_container "${as_image_user[@]}" "${image_command[0]}" 2>&1) && status=0 || status=$?
[ "$status" -eq 2 ] || fail "the entry point without a command exited $status, expected 2: $output"
[[ "$output" == *"no command given"* ]] || fail "the entry point without a command printed: $output"
pass "entry point without a command: exit 2"

output=$(run_in_container "${as_image_user[@]}" "${image_command[0]}" --version 2>&1) ||
    fail "the entry point with --version failed: $output"
[[ "$output" == "epro "* ]] || fail "the entry point with --version printed: $output"
pass "entry point passes options to epro: $output"

# Every subcommand epro lists must reach epro through the entry point, so a
# new subcommand cannot be forgotten in its list.
mapfile -t subcommands < <("$binary" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF && $1 != "help" { print $1 }')
[ "${#subcommands[@]}" -gt 3 ] || fail "could not read the subcommands from epro --help"
for subcommand in "${subcommands[@]}"; do
    output=$(run_in_container "${as_image_user[@]}" "${image_command[0]}" "$subcommand" --help 2>&1) ||
        fail "the entry point does not pass \"$subcommand --help\" to epro: $output"
done
pass "entry point passes every subcommand to epro: ${subcommands[*]}"

if [ "$EUID" -eq 0 ]; then
    output=$(run_in_container "${image_command[@]}" 2>&1) && status=0 || status=$?
    [ "$status" -eq 2 ] || fail "epro as root through the entry point exited $status, expected 2: $output"
    [[ "$output" == *"must not run as root"* ]] || fail "epro as root printed: $output"
    [ -z "$(ls -A "$data")" ] || fail "epro as root was refused but left files in the data volume: $(ls -A "$data")"
    pass "entry point refuses to run epro as root"
else
    echo "skipped: running epro as root (this test is not running as root)"
fi

output=$(run_in_container EPRO_HTTP__MAX_BODY_BYTES=lots "${as_image_user[@]}" "${image_command[@]}" 2>&1) &&
    status=0 || status=$?
[ "$status" -eq 2 ] || fail "a bad override exited $status, expected 2: $output"
[[ "$output" == *"http.max_body_bytes"* && "$output" == *"EPRO_HTTP__MAX_BODY_BYTES"* ]] ||
    fail "the error for a bad override names neither the key nor the variable: $output"
pass "bad override: exit 2 naming http.max_body_bytes and EPRO_HTTP__MAX_BODY_BYTES"

cp "$root$config" "$work/good.toml"
sed -i 's/^listen = /listen_adress = /' "$root$config"
output=$(run_in_container "${as_image_user[@]}" "${image_command[@]}" 2>&1) && status=0 || status=$?
cp "$work/good.toml" "$root$config"
[ "$status" -eq 2 ] || fail "a misspelt key exited $status, expected 2: $output"
[[ "$output" == *"listen_adress"* && "$output" == *"$config"* ]] ||
    fail "the error for a misspelt key names neither the key nor the file: $output"
pass "misspelt key in the file: exit 2 naming listen_adress and the file"

# --- Serving as the image's user --------------------------------------------

# Starts the entry point in the background as the image's user, with the
# extra environment assignments in "$@", and waits until /readyz is 200.
# Sets server_pid and port.
start_server() {
    server_log=$1
    shift
    # setsid does not fork here, because a background job of a script is not
    # a process group leader, so server_pid is the entry point's pid.
    (cd "$data" && exec setsid "${container_env[@]}" "$@" "${as_image_user[@]}" "${image_command[@]}") \
        >"$server_log" 2>&1 &
    server_pid=$!

    port=
    for _ in $(seq 300); do
        kill -0 "$server_pid" 2>/dev/null || fail "the server exited during start"
        port=$({ grep -F '"Server built"' "$server_log" || true; } | jq -r '.address' | sed -n 's/^127\.0\.0\.1://p')
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || fail "the server did not log \"Server built\" with its address within 30 s"

    local status=
    for _ in $(seq 300); do
        status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz" || true)
        [ "$status" = 200 ] && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "the server exited before it was ready"
        sleep 0.1
    done
    fail "/readyz did not answer 200 within 30 s (last status $status)"
}

# Sends SIGTERM and waits up to the unit's TimeoutStopSec for exit status 0.
stop_server() {
    kill -TERM "$server_pid"
    local deadline=$((SECONDS + stop_timeout))
    while kill -0 "$server_pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "the server did not exit within ${stop_timeout} s of SIGTERM"
        sleep 0.1
    done
    local status=0
    wait "$server_pid" || status=$?
    server_pid=
    [ "$status" -eq 0 ] || fail "the server exited with status $status after SIGTERM, expected 0"
    grep -qF '"Store closed: every queued submission is committed"' "$server_log" ||
        fail "the server exited without logging that the store closed"
}

stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
[ -n "$stop_timeout" ] || fail "deploy/systemd/epro.service has no TimeoutStopSec in seconds"

submission_id=$(cat /proc/sys/kernel/random/uuid)
submission=$(
    cat <<EOF
{
  "submissionId": "$submission_id",
  "patientId": "P-0001",
  "completedAt": "2026-12-04T20:15:00+08:00",
  "answers": {
    "/44250-9": "LA6568-5", "/44255-8": "LA6569-3", "/44259-0": "LA6568-5",
    "/44254-1": "LA6570-1", "/44251-7": "LA6568-5", "/44258-2": "LA6568-5",
    "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
  }
}
EOF
)

# Posts the PHQ-9 submission and prints the status code; the reply body goes
# to $work/reply.json.
submit() {
    curl -s -o "$work/reply.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -H 'Accept-Language: en' \
        --data-binary "$submission" "http://127.0.0.1:$port/v1/trials/demo/forms/phq9/submissions"
}

# The first staff account, created through the entry point as an operator would:
# an investigator of the demo trial's site-01, who enrols the patient and enters
# the questionnaire for them (patient tokens are required, as in production).
output=$(run_in_container "${as_image_user[@]}" "${image_command[0]}" staff create --config "$root$config" \
    --id ops --name "Entry point test" --role investigator:demo:site-01 2>&1) ||
    fail "epro staff create through the entry point failed: $output"
# The output holds the log lines on stderr too; the token is on the JSON line of stdout.
token=$(printf '%s\n' "$output" | grep '"staffId"' | jq -r .token)
[[ "$token" == epro_s_* ]] || fail "epro staff create printed no token: $output"
pass "epro staff create through the entry point printed a staff token"

start_server "$work/first.log"
pass "serving on 127.0.0.1:$port, /readyz 200"

status=$(curl -s -o "$work/enrolled.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data-binary '{"patientId": "P-0001", "siteId": "site-01"}' \
    "http://127.0.0.1:$port/v1/trials/demo/patients")
[ "$status" = 201 ] || fail "enrolling P-0001 got $status, expected 201: $(cat "$work/enrolled.json")"
pass "patient enrolled at site-01: 201"

[ "$(realpath "/proc/$server_pid/exe")" = "$root/usr/local/bin/epro" ] ||
    fail "the started process is $(realpath "/proc/$server_pid/exe"), not epro: the entry point did not exec"
running_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$server_pid/status")
[ "$running_uid" = "$expected_uid" ] || fail "epro runs as uid $running_uid, expected $expected_uid"
pass "the started process is epro itself (exec), running as uid $running_uid"

output=$("$root${healthcheck[0]}" "$port") || fail "the health check failed on a ready server: $output"
pass "health check on a ready server: $output"

status=$(submit)
[ "$status" = 201 ] || fail "the PHQ-9 submission got $status, expected 201: $(cat "$work/reply.json")"
[ "$(jq -r '.submissionId + " " + .status' "$work/reply.json")" = "$submission_id accepted" ] ||
    fail "the receipt is not the expected one: $(cat "$work/reply.json")"
pass "PHQ-9 submission: 201 accepted"

status=$(submit)
[ "$status" = 200 ] || fail "the replayed submission got $status, expected 200"
pass "replayed submission: 200"

for file in epro.db outbox.ndjson; do
    for _ in $(seq 100); do
        [ -s "$data/$file" ] && break
        sleep 0.1
    done
    [ -s "$data/$file" ] || fail "$data/$file was not written within 10 s"
    owner_and_mode=$(stat -c '%u %a' "$data/$file")
    [ "$owner_and_mode" = "$expected_uid 600" ] ||
        fail "$file has owner and mode \"$owner_and_mode\", expected \"$expected_uid 600\" (the entry point's umask)"
done
for _ in $(seq 100); do
    grep -qF "\"$submission_id\"" "$data/outbox.ndjson" && break
    sleep 0.1
done
grep -qF "\"$submission_id\"" "$data/outbox.ndjson" || fail "the submission's event did not reach the outbox file within 10 s"
pass "data volume: epro.db and outbox.ndjson owned by uid $expected_uid, mode 600, event relayed"

stop_server
pass "SIGTERM: exit 0 within ${stop_timeout} s, store closed"

output=$("$root${healthcheck[0]}" "$port") && fail "the health check passed with the server stopped: $output"
pass "health check on a stopped server: $output"

start_server "$work/second.log"
status=$(curl -s -o "$work/stored.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/v1/submissions/$submission_id")
[ "$status" = 200 ] || fail "reading the submission back after a restart got $status, expected 200"
[ "$(jq -r '.submissionId + " " + .patientId' "$work/stored.json")" = "$submission_id P-0001" ] ||
    fail "the submission read back has another id or patient"
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/v1/submissions/$submission_id")
[ "$status" = 401 ] || fail "reading the submission without the token got $status, expected 401"
stop_server
pass "restart: the submission read back from the data volume (401 without the token)"

# --- The systemd unit -------------------------------------------------------

exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/local/bin/epro ${cmd[*]}" ] ||
    fail "the unit's ExecStart is \"$exec_start\", expected \"/usr/local/bin/epro ${cmd[*]}\" as in the image"
grep -qx 'StateDirectory=epro' "$unit" || fail "the unit's StateDirectory is not epro (/var/lib/epro)"
delay=$(sed -n 's/^shutdown_readiness_delay_seconds = \([0-9]*\).*/\1/p' "$repo/deploy/epro.toml")
drain=$(sed -n 's/^shutdown_timeout_seconds = \([0-9]*\).*/\1/p' "$repo/deploy/epro.toml")
[ -n "$delay" ] || fail "deploy/epro.toml does not set http.shutdown_readiness_delay_seconds"
[ -n "$drain" ] || fail "deploy/epro.toml does not set http.shutdown_timeout_seconds"
[ "$stop_timeout" -gt $((delay + drain)) ] ||
    fail "TimeoutStopSec=${stop_timeout}s does not exceed epro's shutdown of $delay s + $drain s"
grep -qx "    stop_grace_period: ${stop_timeout}s" "$repo/deploy/compose/compose.yaml" ||
    fail "compose.yaml's stop_grace_period is not the unit's ${stop_timeout}s"
pass "unit: ExecStart as the image's CMD, TimeoutStopSec=${stop_timeout}s > $delay s + $drain s, compose alike"

if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart's binary exists, so the copy names the
    # binary under $root; everything else is the unit as shipped.
    install -d "$work/systemd"
    sed "s#^ExecStart=/usr/local/bin/epro #ExecStart=$root/usr/local/bin/epro #" "$unit" >"$work/systemd/epro.service"
    output=$(systemd-analyze verify "$work/systemd/epro.service" 2>&1) ||
        fail "systemd-analyze verify failed: $output"
    [ -z "$output" ] || fail "systemd-analyze verify warned: $output"
    # --threshold is on a scale of 0 to 100, and the report prints a tenth
    # of it: 20 is the report's 2.0.
    output=$(systemd-analyze security --offline=yes --threshold=20 "$work/systemd/epro.service" 2>&1) ||
        fail "systemd-analyze security rates the unit's exposure above 2.0: $(tail -n 1 <<<"$output")"
    pass "unit: systemd-analyze verify clean; $(grep -o 'Overall exposure level.*' <<<"$output")"
else
    echo "skipped: systemd-analyze is not installed (Debian's package systemd)"
fi

# --- The compose example's configuration ------------------------------------

if [ -n "${TEST_EPRO_POSTGRES_URL:-}" ] && [ -n "${TEST_EPRO_AMQP_URL:-}" ]; then
    suffix="$$_$RANDOM"
    database_to_drop="epro_packaging_$suffix"
    psql "$TEST_EPRO_POSTGRES_URL" -qc "CREATE DATABASE \"$database_to_drop\"" >/dev/null ||
        fail "could not create the test database $database_to_drop"
    database_url="${TEST_EPRO_POSTGRES_URL%/*}/$database_to_drop"
    # This run's own queue and exchange, so that the shared broker's
    # epro.events queue receives nothing.
    queue_to_delete="epro.test.packaging.$suffix"

    cp "$repo/deploy/compose/epro.toml" "$root$config"
    rm -f "$data"/*
    start_server "$work/compose.log" "EPRO_DATABASE__URL=$database_url" "EPRO_OUTBOX__SINK__URL=$TEST_EPRO_AMQP_URL" \
        "EPRO_OUTBOX__SINK__EXCHANGE=$queue_to_delete" "EPRO_OUTBOX__SINK__QUEUE=$queue_to_delete"
    output=$(run_in_container "EPRO_DATABASE__URL=$database_url" "${as_image_user[@]}" "${image_command[0]}" \
        staff create --config "$root$config" --id ops --name "Compose test" --role investigator:demo:site-01 2>&1) ||
        fail "the compose configuration: epro staff create failed: $output"
    token=$(printf '%s\n' "$output" | grep '"staffId"' | jq -r .token)
    status=$(curl -s -o "$work/enrolled.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' --data-binary '{"patientId": "P-0001", "siteId": "site-01"}' \
        "http://127.0.0.1:$port/v1/trials/demo/patients")
    [ "$status" = 201 ] || fail "the compose configuration: enrolling P-0001 got $status: $(cat "$work/enrolled.json")"
    status=$(submit)
    [ "$status" = 201 ] || fail "the compose configuration: the submission got $status, expected 201"
    published=0
    for _ in $(seq 100); do
        published=$(curl -s --max-time 2 "http://127.0.0.1:$port/metrics" |
            awk '/^outbox_events_published_total/ { sum += $NF } END { print sum + 0 }')
        [ "$published" -ge 1 ] && break
        sleep 0.1
    done
    [ "$published" -ge 1 ] || fail "the compose configuration: no event was published to RabbitMQ within 10 s"
    [ -z "$(ls -A "$data")" ] || fail "the compose configuration wrote to the data volume: $(ls -A "$data")"
    stop_server
    pass "compose configuration: PostgreSQL and RabbitMQ, 201, $published event(s) published, exit 0"
else
    echo "skipped: the compose configuration needs TEST_EPRO_POSTGRES_URL and TEST_EPRO_AMQP_URL (run through .ci/run)"
fi

echo "entrypoint: $passed passed, 0 failed"
