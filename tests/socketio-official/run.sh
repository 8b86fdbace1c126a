#!/usr/bin/env bash
# Runs the official protocol test suites of socketio/engine.io-protocol and
# socketio/socket.io-protocol (their `test-suite/` directories, mocha) against switchboard
# started with `serve --socketio-conformance --listen 127.0.0.1:3000`.
#
#   tests/socketio-official/run.sh [ENGINE_IO_PROTOCOL_DIR [SOCKET_IO_PROTOCOL_DIR]]
#
# Each DIR is a copy of the repository (anything with its test-suite/ directory in it);
# a missing one is cloned from GitHub at the commit below. The suites are copied to a
# temporary directory and installed there with `npm ci`; nothing is written to the DIRs or to
# this repository.
#
# The suites' `ws` client emits every frame of a TCP read synchronously, so a listener the
# suite adds after an `await` misses a message that arrived in the same read; browsers
# dispatch one message per task. Unless SHIM=0, `ws` is replaced (through a Node module hook,
# ws-shim/) by a subclass that emits its events one per tick, as a browser does.
#
# Environment:
#   SUITES           which suites to run: "engine.io socket.io" (default), or one of them
#   SHIM             1 (default): browser-like event delivery; 0: the suites' plain `ws`
#   SWITCHBOARD_BIN  server binary (default: `cargo build -p switchboard`, target/debug)
#   SERVER=external  do not start a server: one is already listening on localhost:3000
#   KEEP=1           keep the work directory (logs: server.log, <suite>.log)
#
# Exit status: 0 when every case of every suite passed.
set -euo pipefail

ENGINE_IO_COMMIT=f21de7b00ed09b3bbad2807db718ea5d6bc36aba
SOCKET_IO_COMMIT=4f633dd6a4445492d57af3b27ddd2d336014f1f1
# The suites hard-code http://localhost:3000.
PORT=3000

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
suites="${SUITES:-engine.io socket.io}"

work="$(mktemp -d -t socketio-official.XXXXXX)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "socketio-official: work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# fetch_suite NAME DIR COMMIT: copies DIR/test-suite (or a fresh clone's) to $work/NAME.
fetch_suite() {
    local name="$1" dir="$2" commit="$3"
    if [[ -z "$dir" ]]; then
        dir="$work/src-$name"
        echo "socketio-official: cloning socketio/$name-protocol at $commit"
        git clone --quiet "https://github.com/socketio/$name-protocol.git" "$dir"
        git -C "$dir" checkout --quiet "$commit"
    fi
    if [[ ! -f "$dir/test-suite/test-suite.js" ]]; then
        echo "socketio-official: $dir/test-suite/test-suite.js not found" >&2
        exit 2
    fi
    mkdir -p "$work/$name"
    # Everything but an existing node_modules (installed afresh below).
    (cd "$dir/test-suite" && tar -c --exclude=./node_modules .) | tar -x -C "$work/$name"
    echo "socketio-official: installing the $name suite's dependencies (npm ci)"
    (cd "$work/$name" && npm ci --no-audit --no-fund --loglevel=error >"$work/$name-npm.log" 2>&1) || {
        cat "$work/$name-npm.log" >&2
        exit 2
    }
}

for suite in $suites; do
    case "$suite" in
        engine.io) fetch_suite engine.io "${1:-}" "$ENGINE_IO_COMMIT" ;;
        socket.io) fetch_suite socket.io "${2:-}" "$SOCKET_IO_COMMIT" ;;
        *) echo "socketio-official: unknown suite $suite (engine.io, socket.io)" >&2; exit 2 ;;
    esac
done

if [[ "${SERVER:-}" != external ]]; then
    if [[ -n "${SWITCHBOARD_BIN:-}" ]]; then
        bin="$SWITCHBOARD_BIN"
    else
        cargo build --quiet --manifest-path "$root/Cargo.toml" -p switchboard
        bin="${CARGO_TARGET_DIR:-$root/target}/debug/switchboard"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "socketio-official: something already listens on port $PORT (SERVER=external to use it)" >&2
        exit 2
    fi
    # In the work directory, so that no ./switchboard.toml or store of the caller is used.
    (cd "$work" && exec "$bin" serve --socketio-conformance --listen "127.0.0.1:$PORT" \
        --store memory >"$work/server.log" 2>&1) &
    server_pid=$!
    ready=""
    for _ in $(seq 100); do
        if curl -fs "http://127.0.0.1:$PORT/socket.io/?EIO=4&transport=polling" >/dev/null 2>&1; then
            ready=1
            break
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        echo "socketio-official: the server did not answer a Socket.IO handshake on port $PORT" >&2
        tail -20 "$work/server.log" >&2 || true
        exit 2
    fi
fi

node_options="--dns-result-order=ipv4first"
if [[ "${SHIM:-1}" == 1 ]]; then
    node_options="$node_options --import=file://$here/ws-shim/register.mjs"
fi

status=0
summary=""
for suite in $suites; do
    echo
    echo "=== socketio/$suite-protocol test suite (shim: ${SHIM:-1})"
    set +e
    (cd "$work/$suite" && NODE_OPTIONS="$node_options ${NODE_OPTIONS:-}" timeout 300 npm test --silent) 2>&1 |
        tee "$work/$suite.log"
    rc=${PIPESTATUS[0]}
    set -e
    # mocha's spec reporter: "N passing (Ts)", "N failing", "N pending".
    passing="$(sed -n 's/^ *\([0-9][0-9]*\) passing.*/\1/p' "$work/$suite.log" | tail -1)"
    failing="$(sed -n 's/^ *\([0-9][0-9]*\) failing.*/\1/p' "$work/$suite.log" | tail -1)"
    summary="$summary$suite-protocol: ${passing:-0} passing, ${failing:-0} failing (exit $rc)"$'\n'
    if [[ "$rc" != 0 || -n "$failing" || -z "$passing" ]]; then
        status=1
    fi
done

if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "socketio-official: the server exited during the run" >&2
    tail -20 "$work/server.log" >&2 || true
    status=1
fi

echo
echo "=== summary"
printf '%s' "$summary"
exit "$status"
