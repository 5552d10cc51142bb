# Sourced by the scripts under bench/ (`. "$(dirname "$0")/common.sh"`): what every benchmark
# shares, so each script only says what it measures.
#
# - The working directory is the repository root ($repo).
# - $bin is the directory of the binaries as they ship: the static-pie release build of
#   scripts/build-release (target/<host triple>/release), built here. BENCH_BIN_DIR names another
#   directory instead and skips the build (bench/run-all.sh builds once for all areas).
# - The pinned hyperfine (scripts/install-bench-tools, target/tools/bin) is first in PATH, and the
#   `hyperfine` function below also hands every `--export-json` file to `collect`.
# - `collect FILE` copies a JSON file in hyperfine's export format into $BENCH_COLLECT_DIR (set by
#   bench/run-all.sh, which summarises them), named after $BENCH_AREA; without it, nothing.
# - `print_medians FILE...` prints each command of hyperfine exports as a Markdown table row;
#   `check_median FILE NAME LIMIT_MS` reports whether a command's median is under a target.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/install-bench-tools
export PATH="$repo/target/tools/bin:$PATH"
bin=${BENCH_BIN_DIR:-$(scripts/build-release)}

collect() { # $1: a JSON file in hyperfine's export format
    [ -n "${BENCH_COLLECT_DIR:-}" ] || return 0
    local count
    count=$(find "$BENCH_COLLECT_DIR" -maxdepth 1 -name '*.json' | wc -l)
    cp "$1" "$BENCH_COLLECT_DIR/${BENCH_AREA:-bench}-$(printf %03d "$count").json"
}

hyperfine() { # the pinned hyperfine; its --export-json file is collected afterwards
    "$repo/target/tools/bin/hyperfine" "$@" || return
    local prev="" arg
    for arg in "$@"; do
        case $arg in --export-json=*) collect "${arg#--export-json=}" ;; esac
        [ "$prev" = --export-json ] && collect "$arg"
        prev=$arg
    done
    return 0
}

print_medians() { # $@: hyperfine JSON exports
    python3 - "$@" <<'PY'
import json, statistics, sys
print("| command | median | p5 - p95 | min | runs |")
print("|---|---:|---:|---:|---:|")
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        t = [x * 1000 for x in r["times"]]
        q = statistics.quantiles(t, n=20) if len(t) > 1 else [t[0]] * 19
        print(f"| {r['command']} | {statistics.median(t):.2f} ms | {q[0]:.2f} - {q[-1]:.2f} ms "
              f"| {min(t):.2f} ms | {len(t)} |")
PY
}

check_median() { # $1: hyperfine JSON, $2: command name, $3: limit in ms; fails when missed
    python3 - "$@" <<'PY'
import json, statistics, sys
path, name, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
result = next((r for r in json.load(open(path))["results"] if r["command"] == name), None)
if result is None:
    sys.exit(f"check_median: no command named {name!r} in {path}")
median = statistics.median(result["times"]) * 1000
verdict = "met" if median < limit else "MISSED"
print(f"target: {name}: median {median:.2f} ms < {limit:g} ms: {verdict}")
sys.exit(0 if median < limit else 1)
PY
}

empty_program() { # prints the path of an empty Rust program built like the shipped binaries
    local out=$repo/target/bench-floor
    if [ ! -x "$out/empty" ]; then
        mkdir -p "$out"
        echo 'fn main() {}' >"$out/empty.rs"
        rustc -O -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs \
            -o "$out/empty" "$out/empty.rs"
    fi
    echo "$out/empty"
}
