#!/usr/bin/env bash
# Benchmark: `amdgpu-cdi inject` of one device into a typical OCI config versus the same injection
# by the reference Go library 0.5.2 (tests/go/cdi-inject), whole process each, with hyperfine.
# Prints a Markdown table for BENCHMARKS.md. Target: ours at least 5x faster (median).
#
# Ours is the shipped (static) release binary.
#
# Needs: golang-go and the Debian CDI library package (built offline), python3.
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=target/bench-inject
mkdir -p "$out"
(cd tests/go/cdi-inject &&
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../../$out/go-cache" GOFLAGS= \
        go build -o "../../../$out/cdi-inject" .)

specs=tests/fixtures/specs/good
config=tests/fixtures/oci/config.json
device=example.com/device=0
ours=("$bin/amdgpu-cdi" inject --spec-dir "$specs" --config "$config" "$device")
go=("$out/cdi-inject" -spec-dir "$specs" -config "$config" "$device")

# Both must succeed on the same input before timing them.
"${ours[@]}" > "$out/ours.json"
"${go[@]}" > "$out/go.json"

# The third command is the floor: starting our binary and printing the version.
hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$out/results.json" \
    -n amdgpu-cdi "${ours[*]}" \
    -n go-cdi-0.5.2 "${go[*]}" \
    -n floor "$bin/amdgpu-cdi --version"

python3 - "$out/results.json" <<'PY'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
def row(name):
    t = [x * 1000 for x in results[name]["times"]]
    q = statistics.quantiles(t, n=20)
    return statistics.median(t), q[0], q[-1], statistics.stdev(t)
ours, go, floor = row("amdgpu-cdi"), row("go-cdi-0.5.2"), row("floor")
print()
print("| injector | median | p5 - p95 | stddev |")
print("|---|---|---|---|")
rows = (
    ("amdgpu-cdi inject", ours),
    ("Go CDI 0.5.2 (tests/go/cdi-inject)", go),
    ("floor: amdgpu-cdi --version", floor),
)
for name, (med, p5, p95, sd) in rows:
    print(f"| {name} | {med:.2f} ms | {p5:.2f} - {p95:.2f} ms | {sd:.2f} ms |")
print()
print(f"Ratio (Go median / ours median): {go[0] / ours[0]:.1f}x (target >= 5x)")
print(f"Load average while measuring: {open('/proc/loadavg').read().split()[0]}")
PY
