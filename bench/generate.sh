#!/usr/bin/env bash
# Benchmark: `amdgpu-cdi generate` as a whole process on the 64-partition example host
# (8x MI300X in CPX), the shipped (static) release binary. Target: median under 5 ms, and no
# child processes. Needs python3; strace (optional) confirms that no process is spawned.
# Usage: bench/generate.sh [extra hyperfine args]
set -euo pipefail
. "$(dirname "$0")/common.sh"

host=examples/hosts/mi300x-cpx/sys
cdi=$bin/amdgpu-cdi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The command once, to check it works and count its output.
"$cdi" generate --sysfs-root "$host" --dev-root /nonexistent >"$out/spec.yaml"
echo "spec: $(grep -c "name: " "$out/spec.yaml") devices, $(wc -c <"$out/spec.yaml") bytes" >&2

if command -v strace >/dev/null 2>&1; then
    strace -f -qq -e trace=fork,vfork,clone,clone3,execve -o "$out/strace" \
        "$cdi" generate --sysfs-root "$host" --dev-root /nonexistent >/dev/null
    spawned=$(grep -cE '(fork|clone3?)\(' "$out/strace" || true)
    execs=$(grep -c 'execve(' "$out/strace" || true)
    echo "processes: $execs execve (the command itself), $spawned fork/clone" >&2
    if [ "$spawned" -ne 0 ] || [ "$execs" -ne 1 ]; then
        echo "FAIL: generate spawned processes" >&2
        exit 1
    fi
fi

hyperfine -N --warmup 50 --runs 500 --export-json "$out/result.json" "$@" \
    -n "amdgpu-cdi generate, 64 partitions" "$cdi generate --sysfs-root $host --dev-root /nonexistent"

python3 - "$out/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
median_ms = r["median"] * 1000
print(f"median {median_ms:.2f} ms, mean {r['mean']*1000:.2f} ms, "
      f"min {r['min']*1000:.2f} ms, max {r['max']*1000:.2f} ms")
if median_ms >= 5:
    print("FAIL: median is not under 5 ms", file=sys.stderr)
    sys.exit(1)
PY
