#!/usr/bin/env bash
# Runs the Autobahn testsuite's fuzzingclient cases 1-13 (kosoku, from PyPI)
# against a WebSocket echo endpoint and fails if any case FAILED.
#
#   tests/autobahn/run.sh [HOST:PORT]   # or AUTOBAHN_TARGET=HOST:PORT
#   tests/autobahn/run.sh --echo        # build + start the crate's echo example
#
# The endpoint must echo text and binary messages, negotiate
# permessage-deflate, and compress its echoes (kosoku 0.1.0 crashes on an
# uncompressed echo in 12.x/13.x: "Strings must be encoded before hashing";
# such cases are listed as runner errors and do not fail the run unless
# AUTOBAHN_STRICT=1). OK, NON-STRICT and INFORMATIONAL count as passed;
# FAILED, UNIMPLEMENTED, WRONG CODE, UNCLEAN and any other ERROR as failed.
#
# Environment:
#   AUTOBAHN_PROFILE      quick (default, ~1-2 min: 12.x/13.x up to 32 KiB
#                         messages) or full (every case, ~10 min on 2 cores)
#   AUTOBAHN_PARALLELISM  cases run at once (default 2)
#   AUTOBAHN_TIMEOUT      seconds before the whole run is abandoned (default 1200)
#   AUTOBAHN_STRICT       1: kosoku's own errors fail the run too
#   AUTOBAHN_REPORT_DIR   where to write the report (default: a new temp dir)
set -euo pipefail

KOSOKU_VERSION=0.1.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

target="${AUTOBAHN_TARGET:-127.0.0.1:9001}"
echo_pid=""
if [[ "${1:-}" == "--echo" ]]; then
    cargo build --quiet --release --manifest-path "$root/Cargo.toml" \
        -p switchboard-websocket --example echo
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # COMPRESS_ABOVE_BYTES=0: compress every echo (see the kosoku note above).
    "${CARGO_TARGET_DIR:-$root/target}/release/examples/echo" "$port" 0 &
    echo_pid=$!
    trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
    target="127.0.0.1:$port"
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
elif [[ -n "${1:-}" ]]; then
    target="$1"
fi

if ! python3 -c 'import kosoku' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
fi

cases=(-i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*' -i '12.*' -i '13.*')
case "${AUTOBAHN_PROFILE:-quick}" in
    full) ;;
    quick)
        # Drop 12.x/13.x sub-cases with 64 KiB and 128 KiB messages (.9, .10,
        # .14-.18): about 85% of the suite's time, same code paths.
        for group in 12 13; do
            for size in 9 10 14 15 16 17 18; do cases+=(-x "$group.*.$size"); done
        done
        ;;
    *) echo "AUTOBAHN_PROFILE must be quick or full" >&2; exit 2 ;;
esac

report="${AUTOBAHN_REPORT_DIR:-$(mktemp -d -t autobahn.XXXXXX)}"
echo "autobahn: kosoku $KOSOKU_VERSION against ws://$target (profile ${AUTOBAHN_PROFILE:-quick}), report in $report"
start=$SECONDS
# kosoku exits 1 when any case did not pass, including its own errors; the
# verdict below comes from the report instead.
# (The package has no __main__; this is its console script, `kosoku`.)
timeout "${AUTOBAHN_TIMEOUT:-1200}" python3 -c 'from kosoku._cli import main; main()' "$target" "${cases[@]}" \
    -p "${AUTOBAHN_PARALLELISM:-2}" -o "$report" >"$report/kosoku.log" 2>&1 || true
echo "autobahn: ran for $((SECONDS - start)) s"

python3 - "$report" "${AUTOBAHN_STRICT:-0}" <<'PY'
import collections, json, os, sys

report, strict = sys.argv[1], sys.argv[2] == "1"
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASSING_CLOSE = {"OK", "INFORMATIONAL"}
# kosoku 0.1.0 bug: an uncompressed echo reaches the Python case as str, and
# the case hashes it (12.x/13.x only).
RUNNER_BUG = "Strings must be encoded before hashing"

index_path = os.path.join(report, "index.json")
if not os.path.exists(index_path):
    print(open(os.path.join(report, "kosoku.log")).read()[-3000:], file=sys.stderr)
    print("autobahn: 0 passed, 1 failed (kosoku wrote no report)")
    sys.exit(1)

def key(case_id):
    return [int(part) for part in case_id.split(".")]

results = {}
for cases in json.load(open(index_path)).values():
    results.update(cases)
statuses = collections.Counter()
failed, runner_errors = [], []
for case_id in sorted(results, key=key):
    entry = results[case_id]
    behavior, close = entry["behavior"], entry["behaviorClose"]
    statuses[behavior] += 1
    if behavior in PASSING and close in PASSING_CLOSE:
        continue
    detail = json.load(open(os.path.join(report, entry["reportfile"])))
    line = f"{case_id}: behavior={behavior} close={close}: {detail.get('result') or detail.get('resultClose')}"
    if behavior == "ERROR" and RUNNER_BUG in (detail.get("result") or "") and not strict:
        runner_errors.append(line)
    else:
        failed.append(line)

print("autobahn: by behavior: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
for line in runner_errors:
    print(f"autobahn: kosoku error (not counted): {line}")
for line in failed:
    print(f"autobahn: FAILED {line}")
passed = len(results) - len(failed) - len(runner_errors)
if runner_errors:
    print(f"autobahn: {len(runner_errors)} cases hit kosoku's own error (see above)")
print(f"autobahn: {passed} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
