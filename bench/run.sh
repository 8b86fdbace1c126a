#!/usr/bin/env bash
# switchboard's macro benchmark: builds the release binaries, then for each scenario runs
# switchboard and the floor (bench/src/bin/floor.rs) one after the other in the same run, each
# server pinned to core 0 and the load generator to core 1, and prints a table with the ratio
# switchboard / floor. Loopback only; every step is bounded in time; everything it starts is
# stopped on exit (trap). See bench/README.md.
#
#   bench/run.sh [fanout|idle|all] [--n 5000] [--quick] [--p99-ms 100] [--targets "switchboard floor"]
#
# Environment: SWITCHBOARD_ARGS adds arguments to `switchboard serve` (default `--log-level
# warn`: the floor logs nothing either, and a log line per connection would be measured too);
# FLOOR_ARGS adds arguments to `floor`.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [fanout|idle|all] [--n N] [--quick] [--p99-ms MS] [--targets "switchboard floor"]
  fanout   find the highest publication rate with p99 < 100 ms and no loss at N subscribers
  idle     server memory per idle subscribed connection at N connections
  all      both (default)
  --n N    subscriber connections (default 5000)
  --quick  shorter windows and search budget (about 3.5 min for `all` instead of 9)
  --p99-ms MS  latency limit of a passing fanout step (default 100)
  --targets  servers to run, in order (default "switchboard floor"; a missing one is skipped)
EOF
}

command_line="bench/run.sh $*"
scenario=all
n=5000
quick=0
p99_ms=100
targets="switchboard floor"
while (($#)); do
    case $1 in
        fanout | idle | all) scenario=$1 ;;
        --n)
            [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "--n needs a number" >&2; exit 2; }
            n=$2
            shift
            ;;
        --quick) quick=1 ;;
        --p99-ms)
            [[ ${2:-} =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--p99-ms needs a number" >&2; exit 2; }
            p99_ms=$2
            shift
            ;;
        --targets)
            targets=${2:-}
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Every connection is a file descriptor on both sides; the machine allows 20000.
ulimit -n 20000 || { echo "cannot raise the open-file limit to 20000" >&2; exit 1; }
for tool in cargo taskset timeout; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
(($(nproc) >= 2)) || { echo "needs 2 cores (server on core 0, generator on core 1)" >&2; exit 1; }

# === build ===
metadata=$(cargo metadata --no-deps --format-version 1) || {
    echo "cargo metadata failed: is the workspace consistent?" >&2
    exit 1
}
target_dir=$(sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' <<<"$metadata")
packages=(-p switchboard-bench)
run_targets=()
for t in $targets; do
    case $t in
        floor) run_targets+=(floor) ;;
        switchboard)
            if grep -q '"name":"switchboard","version"' <<<"$metadata"; then
                packages+=(-p switchboard)
                run_targets+=(switchboard)
            else
                echo "note: no \`switchboard\` package in the workspace yet; skipping it" >&2
            fi
            ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
    esac
done
((${#run_targets[@]})) || { echo "nothing to run" >&2; exit 1; }
echo "== building: cargo build --release ${packages[*]}"
cargo build --release "${packages[@]}"
bin=$target_dir/release

out_dir=$target_dir/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out_dir"
results=$out_dir/results.jsonl
: >"$results"

# === scenario settings ===
if ((quick)); then
    fanout_args=(--find-max --p99-limit-ms "$p99_ms" --warmup-s 1 --window-s 3 --drain-s 2 --max-time-s 90)
    idle_args=(--settle-s 1)
    fanout_limit=150
else
    fanout_args=(--find-max --p99-limit-ms "$p99_ms" --warmup-s 2 --window-s 5 --drain-s 3 --max-time-s 240)
    idle_args=(--settle-s 3)
    fanout_limit=330
fi
idle_limit=120

# === processes ===
# Everything started in the background, so the trap can stop it: bash runs a trap only between
# foreground commands, which is why the generator runs in the background too, under `wait`.
pids=()
cleanup() {
    local pid i
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

server_pid=
server_addr=
# start_server NAME LOG: starts NAME on core 0 on a free port, waits for its
# `listening on http://ADDR` line (20 s at most); sets server_pid and server_addr.
start_server() {
    local name=$1 log=$2 cmd
    # Word splitting of the *_ARGS variables is wanted: they hold several arguments.
    # shellcheck disable=SC2206
    case $name in
        switchboard) cmd=("$bin/switchboard" serve --listen 127.0.0.1:0 ${SWITCHBOARD_ARGS---log-level warn}) ;;
        floor) cmd=("$bin/floor" --listen 127.0.0.1:0 --workers 1 ${FLOOR_ARGS:-}) ;;
    esac
    echo "== $name: taskset -c 0 ${cmd[*]}"
    # taskset execs the server, so $! is the server's own pid.
    taskset -c 0 "${cmd[@]}" >"$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    local deadline=$((SECONDS + 20))
    until grep -q 'listening on http://' "$log"; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "$name exited before listening; last lines of $log:" >&2
            tail -n 5 "$log" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$name did not print 'listening on http://' within 20 s" >&2
            return 1
        fi
        sleep 0.1
    done
    server_addr=$(grep -m1 -o 'listening on http://[][0-9a-fA-F.:]*' "$log" | sed 's|listening on http://||')
}

stop_server() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# run_scenario SCENARIO LIMIT ARGS...: each target, fresh server, generator on core 1.
run_scenario() {
    local which=$1 limit=$2 name
    shift 2
    for name in "${run_targets[@]}"; do
        echo
        echo "== $which / $name (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
        if ! start_server "$name" "$out_dir/$name-$which.log"; then
            stop_server "$server_pid"
            continue
        fi
        local gen=(taskset -c 1 "$bin/loadgen" "$which" --url "ws://$server_addr/ws"
            --label "$name" --server-pid "$server_pid" --n "$n" "$@")
        echo "== generator: ${gen[*]}"
        local gen_out=$out_dir/$name-$which.out
        timeout --kill-after=10 "$limit" "${gen[@]}" >"$gen_out" 2>&1 &
        local gen_pid=$!
        pids+=("$gen_pid")
        tail -n +1 -f --pid="$gen_pid" "$gen_out" &
        local tail_pid=$!
        pids+=("$tail_pid")
        if ! wait "$gen_pid"; then
            echo "!! the generator failed or timed out for $name ($which)" >&2
        fi
        wait "$tail_pid" 2>/dev/null || true
        cat "$gen_out" >>"$results"
        stop_server "$server_pid"
    done
}

case $scenario in
    idle) run_scenario idle "$idle_limit" "${idle_args[@]}" ;;
    fanout) run_scenario fanout "$fanout_limit" "${fanout_args[@]}" ;;
    all)
        run_scenario idle "$idle_limit" "${idle_args[@]}"
        run_scenario fanout "$fanout_limit" "${fanout_args[@]}"
        ;;
esac

echo
echo "== results: $command_line"
echo "   $(nproc) cores, $(uname -r), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), raw output in $out_dir"
"$bin/loadgen" table "$results"
