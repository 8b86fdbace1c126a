#!/usr/bin/env bash
# switchboard's macro benchmark: builds the release binaries, then for each scenario runs
# switchboard and the floor (bench/src/bin/floor.rs) one after the other in the same run, each
# server pinned to core 0 and the load generator to core 1, and prints a table with the ratio
# switchboard / floor. `publish` and `fanout-store` compare switchboard's stores instead
# (memory, SQLite, PostgreSQL; sync or async durability), each run on a fresh server with its
# own data. `socketio` compares switchboard's Socket.IO endpoint (bench/socketio.toml) with
# socketioxide and node socket.io (bench/peers/). Loopback only; every step is bounded in time;
# everything it starts is stopped, and every data directory it makes removed, on exit (trap).
# See bench/README.md.
#
#   bench/run.sh [fanout|idle|all|publish|fanout-store|socketio] [--n 5000] [--quick]
#                [--p99-ms 100] [--targets "switchboard floor"] [--publishers 64] [--channels 64]
#
# Environment: SWITCHBOARD_ARGS adds arguments to `switchboard serve` (default `--log-level
# warn`: the floor logs nothing either, and a log line per connection would be measured too);
# FLOOR_ARGS adds arguments to `floor`, SOCKETIOXIDE_ARGS to the socketioxide peer.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [SCENARIO] [--n N] [--quick] [--p99-ms MS] [--targets "switchboard floor"]
                    [--publishers P] [--channels K]
  fanout   find the highest publication rate with p99 < 100 ms and no loss at N subscribers
  idle     server memory per idle subscribed connection at N connections
  all      both (default)
  publish  switchboard only: P closed-loop publishers over K channels, via HTTP and WebSocket,
           against each store (memory, sqlite-sync, sqlite-async, postgres-sync)
  fanout-store  switchboard only: fanout with --store memory, then sqlite, both durability async
  socketio sio-idle then sio-fanout (idle and fanout over Socket.IO) against switchboard
           (--config bench/socketio.toml), socketioxide and node socket.io (bench/peers/)
  --n N    subscriber connections (default 5000)
  --quick  shorter windows and search budget (about 3.5 min for `all` instead of 9)
  --p99-ms MS  latency limit of a passing fanout step (default 100)
  --targets  servers to run, in order (default "switchboard floor", for socketio
             "switchboard socketioxide node-socketio"; a missing one is skipped; fanout, idle
             and socketio only)
  --publishers P  publish: closed-loop publishers (default 64)
  --channels K    publish: channels they publish to, publisher i to bench:{i % K} (default 64)
EOF
}

command_line="bench/run.sh $*"
scenario=all
n=5000
quick=0
p99_ms=100
targets=
publishers=64
channels=64
while (($#)); do
    case $1 in
        fanout | idle | all | publish | fanout-store | socketio) scenario=$1 ;;
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
        --publishers | --channels)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "$1 needs a positive number" >&2; exit 2; }
            if [[ $1 == --publishers ]]; then publishers=$2; else channels=$2; fi
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
case $scenario in
    # These compare switchboard's stores with each other: there is no floor to run.
    publish | fanout-store) targets=switchboard ;;
    socketio) targets=${targets:-switchboard socketioxide node-socketio} ;;
    *) targets=${targets:-switchboard floor} ;;
esac
build_socketioxide=0
for t in $targets; do
    # The floor speaks only the native protocol, the peers only Socket.IO.
    if [[ $t == floor && $scenario == socketio ]] ||
        [[ ($t == socketioxide || $t == node-socketio) && $scenario != socketio ]]; then
        echo "target $t does not run scenario $scenario" >&2
        exit 2
    fi
    case $t in
        floor) run_targets+=(floor) ;;
        socketioxide)
            build_socketioxide=1
            run_targets+=(socketioxide)
            ;;
        node-socketio)
            if command -v node >/dev/null && command -v npm >/dev/null; then
                run_targets+=(node-socketio)
            else
                echo "note: node and npm are needed for node-socketio; skipping it" >&2
            fi
            ;;
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

# The store matrix sets the store and durability itself; settings from the environment would
# silently override the generated configuration (file < environment < flags).
case $scenario in
    publish | fanout-store)
        for var in $(compgen -e); do
            case $var in
                SWITCHBOARD_CONFIG | SWITCHBOARD_POSTGRES_URL | SWITCHBOARD_STORE__* | SWITCHBOARD_CHANNELS__*)
                    echo "note: ignoring $var for the store matrix" >&2
                    unset "$var"
                    ;;
            esac
        done
        ;;
esac
echo "== building: cargo build --release ${packages[*]}"
cargo build --release "${packages[@]}"
bin=$target_dir/release
# The Socket.IO peers: a Cargo project of its own (not a workspace member) built into its own
# target directory, and a node project installed from its committed lock file.
socketioxide_bin=$target_dir/peers/socketioxide/release/socketioxide-peer
if ((build_socketioxide)); then
    echo "== building: cargo build --release --manifest-path bench/peers/socketioxide/Cargo.toml"
    cargo build --release --manifest-path "$root/bench/peers/socketioxide/Cargo.toml" \
        --target-dir "$target_dir/peers/socketioxide"
fi
if [[ " ${run_targets[*]} " == *" node-socketio "* ]]; then
    echo "== installing: npm ci in bench/peers/node-socketio (node $(node --version))"
    (cd "$root/bench/peers/node-socketio" && npm ci --no-audit --no-fund --loglevel=error)
fi

out_dir=$target_dir/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out_dir"
results=$out_dir/results.jsonl
: >"$results"

# === scenario settings ===
if ((quick)); then
    fanout_args=(--find-max --p99-limit-ms "$p99_ms" --warmup-s 1 --window-s 3 --drain-s 2 --max-time-s 90)
    idle_args=(--settle-s 1)
    publish_args=(--warmup-s 1 --window-s 3)
    fanout_limit=150
else
    fanout_args=(--find-max --p99-limit-ms "$p99_ms" --warmup-s 2 --window-s 5 --drain-s 3 --max-time-s 240)
    idle_args=(--settle-s 3)
    publish_args=(--warmup-s 2 --window-s 10)
    fanout_limit=330
fi
idle_limit=120
# Publishers connect (10 s at most), publish through warm-up and window, then wait for their
# last reply (15 s at most, --reply-timeout-s).
publish_args+=(--publishers "$publishers" --channels "$channels" --connect-timeout-s 10 --reply-timeout-s 15)
publish_limit=60

# === processes ===
# Everything started in the background, so the trap can stop it: bash runs a trap only between
# foreground commands, which is why the generator runs in the background too, under `wait`.
pids=()
pg_pid=
data_dirs=()
cleanup() {
    local pid i
    # PostgreSQL first, and given longer: its fast shutdown may take seconds, and a pgserver
    # killed before it stopped PostgreSQL would leave PostgreSQL running.
    [[ -n $pg_pid ]] && stop_pgserver
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
    for dir in "${data_dirs[@]}"; do
        rm -rf "$dir"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

server_pid=
server_addr=
# start_server NAME LOG [ARGS...]: starts NAME on core 0 on a free port, with ARGS after the
# *_ARGS variable's, waits for its `listening on http://ADDR` line (20 s at most); sets
# server_pid and server_addr.
start_server() {
    local name=$1 log=$2 cmd
    shift 2
    # Word splitting of the *_ARGS variables is wanted: they hold several arguments.
    # shellcheck disable=SC2206
    case $name in
        switchboard) cmd=("$bin/switchboard" serve --listen 127.0.0.1:0 ${SWITCHBOARD_ARGS---log-level warn} "$@") ;;
        floor) cmd=("$bin/floor" --listen 127.0.0.1:0 --workers 1 ${FLOOR_ARGS:-}) ;;
        # One tokio worker, like the floor; socketioxide's configuration is its default.
        socketioxide) cmd=("$socketioxide_bin" --listen 127.0.0.1:0 --workers 1 ${SOCKETIOXIDE_ARGS:-}) ;;
        node-socketio) cmd=(node "$root/bench/peers/node-socketio/server.mjs" --listen 127.0.0.1:0) ;;
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

# run_one SCENARIO TARGET LABEL LIMIT GEN_ARGS...: starts TARGET fresh (with the arguments in
# the server_extra array), runs the generator on core 1 under `timeout LIMIT`, stops the server.
# Output files are named after LABEL and SCENARIO (and the run_tag variable, when set).
server_extra=()
run_tag=
run_one() {
    local which=$1 name=$2 label=$3 limit=$4 url
    shift 4
    local stem=$out_dir/$label-$which${run_tag:+-$run_tag}
    echo
    echo "== $which / $label${run_tag:+ / $run_tag} (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! start_server "$name" "$stem.log" "${server_extra[@]}"; then
        stop_server "$server_pid"
        return 0
    fi
    case $which in
        publish) url=http://$server_addr ;;
        sio-*) url="ws://$server_addr/socket.io/?EIO=4&transport=websocket" ;;
        *) url=ws://$server_addr/ws ;;
    esac
    local gen=(taskset -c 1 "$bin/loadgen" "$which" --url "$url"
        --label "$label" --server-pid "$server_pid" "$@")
    echo "== generator: ${gen[*]}"
    local gen_out=$stem.out
    # Created first: tail below must not look for it before the generator's shell opens it.
    : >"$gen_out"
    timeout --kill-after=10 "$limit" "${gen[@]}" >"$gen_out" 2>&1 &
    local gen_pid=$!
    pids+=("$gen_pid")
    tail -n +1 -f --pid="$gen_pid" "$gen_out" &
    local tail_pid=$!
    pids+=("$tail_pid")
    if ! wait "$gen_pid"; then
        echo "!! the generator failed or timed out for $label ($which${run_tag:+ $run_tag})" >&2
    fi
    wait "$tail_pid" 2>/dev/null || true
    cat "$gen_out" >>"$results"
    stop_server "$server_pid"
}

# run_scenario SCENARIO LIMIT ARGS...: each target, fresh server, generator on core 1.
run_scenario() {
    local which=$1 limit=$2 name
    shift 2
    server_extra=()
    for name in "${run_targets[@]}"; do
        run_one "$which" "$name" "$name" "$limit" --n "$n" "$@"
    done
}

# === the store matrix (publish, fanout-store) ===
# Each store run gets its own data directory, next to the results (so on the same disk as the
# build, never a tmpfs unless the target directory is one), removed after the run.
new_data_dir() {
    data_dir=$(mktemp -d "$out_dir/data.XXXXXX")
    data_dirs+=("$data_dir")
}

# Durability is a channel option: set through a generated configuration file.
for mode in sync async; do
    printf '[channels]\ndurability = "%s"\n' "$mode" >"$out_dir/durability-$mode.toml"
done

# store_args CONFIG: sets server_extra for a store configuration (a label of the matrix).
store_args() {
    case $1 in
        memory) server_extra=(--store memory) ;;
        # The foundation's behaviour: delivered at once, the (memory) store written after.
        memory-async) server_extra=(--store memory --config "$out_dir/durability-async.toml") ;;
        sqlite-sync | sqlite-async)
            new_data_dir
            server_extra=(--store sqlite --data-dir "$data_dir" --config "$out_dir/durability-${1#sqlite-}.toml")
            ;;
        postgres-sync)
            server_extra=(--store postgres --postgres-url "${pg_urls[$run_tag]}" --config "$out_dir/durability-sync.toml")
            ;;
    esac
}

# PostgreSQL for the postgres-* runs: one cluster for the whole scenario, a fresh database per
# run. pgserver (src/bin/pgserver.rs) runs under `taskset -c 0`, so the postmaster and every
# backend it forks are pinned to core 0 with switchboard: the database is part of the server
# side. It prints `database NAME URL` per database, then `ready` (60 s at most).
declare -A pg_urls=()
start_pgserver() {
    local log=$out_dir/pgserver.log args=() via
    for via in "$@"; do
        args+=(--database "bench_$via")
    done
    echo "== postgres: taskset -c 0 $bin/pgserver ${args[*]}"
    taskset -c 0 "$bin/pgserver" "${args[@]}" >"$log" 2>&1 &
    pg_pid=$!
    local deadline=$((SECONDS + 60))
    until grep -qx ready "$log"; do
        if ! kill -0 "$pg_pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "PostgreSQL did not start; last lines of $log:" >&2
            tail -n 5 "$log" >&2
            stop_pgserver
            return 1
        fi
        sleep 0.2
    done
    for via in "$@"; do
        pg_urls[$via]=$(sed -n "s|^database bench_$via ||p" "$log")
    done
}

stop_pgserver() {
    local i
    [[ -n $pg_pid ]] || return 0
    kill -TERM "$pg_pid" 2>/dev/null || true
    # pgserver waits up to 30 s for PostgreSQL's fast shutdown.
    for ((i = 0; i < 400; i++)); do
        kill -0 "$pg_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pg_pid" 2>/dev/null || true
    wait "$pg_pid" 2>/dev/null || true
    pg_pid=
}

# The file system under a directory (tmpfs would make every fsync free).
fs_type() {
    findmnt -no FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1" 2>/dev/null || echo '?'
}

run_publish() {
    local vias=(http ws) config via
    local configs=(memory sqlite-sync sqlite-async postgres-sync)
    echo "== data directories on $(fs_type "$out_dir"); PostgreSQL's in ${TMPDIR:-/tmp} on $(fs_type "${TMPDIR:-/tmp}")"
    if ! start_pgserver "${vias[@]}"; then
        echo "!! skipping postgres-sync: PostgreSQL could not be started" >&2
        configs=(memory sqlite-sync sqlite-async)
    fi
    for config in "${configs[@]}"; do
        for via in "${vias[@]}"; do
            run_tag=$via
            store_args "$config"
            run_one publish switchboard "$config" "$publish_limit" --via "$via" "${publish_args[@]}"
            if [[ $config == sqlite-* ]]; then rm -rf "$data_dir"; fi
        done
    done
    run_tag=
    stop_pgserver
}

run_fanout_store() {
    local config
    echo "== data directories on $(fs_type "$out_dir")"
    # Both deliver at publish time and commit in the background, so the ratio is the cost of
    # keeping the stream in SQLite rather than in memory.
    for config in memory-async sqlite-async; do
        store_args "$config"
        run_one fanout switchboard "$config" "$fanout_limit" --n "$n" "${fanout_args[@]}"
        if [[ $config == sqlite-* ]]; then rm -rf "$data_dir"; fi
    done
}

# === Socket.IO: switchboard (declarative, bench/socketio.toml) vs socketioxide vs node ===
# run_sio SCENARIO LIMIT ARGS...: like run_scenario, switchboard with the bench's configuration.
run_sio() {
    local which=$1 limit=$2 name
    shift 2
    for name in "${run_targets[@]}"; do
        case $name in
            switchboard) server_extra=(--config "$root/bench/socketio.toml") ;;
            *) server_extra=() ;;
        esac
        run_one "$which" "$name" "$name" "$limit" --n "$n" "$@"
    done
    server_extra=()
}

table_args=()
case $scenario in
    idle) run_scenario idle "$idle_limit" "${idle_args[@]}" ;;
    fanout) run_scenario fanout "$fanout_limit" "${fanout_args[@]}" ;;
    all)
        run_scenario idle "$idle_limit" "${idle_args[@]}"
        run_scenario fanout "$fanout_limit" "${fanout_args[@]}"
        ;;
    publish) run_publish ;;
    fanout-store)
        run_fanout_store
        table_args=(--ratio sqlite-async/memory-async)
        ;;
    socketio)
        run_sio sio-idle "$idle_limit" "${idle_args[@]}"
        run_sio sio-fanout "$fanout_limit" "${fanout_args[@]}"
        table_args=(--ratio switchboard/socketioxide --ratio switchboard/node-socketio)
        ;;
esac

echo
echo "== results: $command_line"
echo "   $(nproc) cores, $(uname -r), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), raw output in $out_dir"
"$bin/loadgen" table "${table_args[@]}" "$results"
