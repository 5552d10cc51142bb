#!/usr/bin/env bash
# Runs every benchmark of bench/ and regenerates the summary section of BENCHMARKS.md (between
# the `run-all` markers; the areas' own sections, with their readings, are left as they are).
#
# The binaries are built once, as they ship (scripts/build-release), and every area measures
# those (BENCH_BIN_DIR). The area scripts (generate.sh, inject.sh, hooks.sh, prestart.sh) run
# unchanged: bench/common.sh copies every hyperfine JSON export they make, and the export of
# bench/alternate.py (hooks.sh's wrapper A/B), into target/bench-all/json/ (BENCH_COLLECT_DIR),
# and their output goes to target/bench-all/logs/<area>.txt. `validate` has no area script: it is
# measured here, ours against the reference Go library 0.5.2 (tests/go/cdi-validate) on the
# largest generated spec. Every figure is the median with the 5th-95th percentile spread of its
# runs; the summary adds the pairs worth comparing and the issues' targets.
#
# Needs root (hooks.sh and prestart.sh make device nodes and cgroups), python3, golang-go with
# the Debian CDI library package, busybox-static, runc; hyperfine 1.19 is installed into
# target/tools on first use (scripts/install-bench-tools). A few minutes on a quiet machine,
# more under load.
# Usage: sudo bench/run-all.sh [area...]   (areas: generate validate inject hooks prestart)
set -euo pipefail
areas=("$@")
. "$(dirname "$0")/common.sh"
work=$repo/target/bench-all
[ ${#areas[@]} -gt 0 ] || areas=(generate validate inject hooks prestart)

rm -rf "$work/json" "$work/logs"
mkdir -p "$work/json" "$work/logs"
export BENCH_BIN_DIR=$bin BENCH_COLLECT_DIR=$work/json

# validate: ours and the Go reference on the spec generate writes for the 64-partition host.
bench_validate() {
    local out=$work/validate
    mkdir -p "$out"
    (cd tests/go/cdi-validate &&
        GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$out/go-cache" GOFLAGS= \
            go build -o "$out/cdi-validate" .)
    "$bin/amdgpu-cdi" generate --sysfs-root examples/hosts/mi300x-cpx/sys \
        --dev-root /nonexistent --output "$out/amd.com-gpu.yaml"
    # Both must accept the spec before they are timed.
    "$bin/amdgpu-cdi" validate "$out/amd.com-gpu.yaml"
    "$out/cdi-validate" "$out/amd.com-gpu.yaml" | grep -q "	valid$"
    hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$out/results.json" \
        -n "amdgpu-cdi validate" "$bin/amdgpu-cdi validate $out/amd.com-gpu.yaml" \
        -n "Go CDI 0.5.2 (tests/go/cdi-validate)" "$out/cdi-validate $out/amd.com-gpu.yaml"
}

failed=()
for area in "${areas[@]}"; do
    echo "== $area (log: $work/logs/$area.txt)" >&2
    case $area in
        validate) cmd=(bench_validate) ;;
        generate | inject | hooks | prestart) cmd=("bench/$area.sh") ;;
        *) echo "bench/run-all.sh: unknown area $area" >&2; exit 2 ;;
    esac
    # An area that misses its own target exits non-zero; its figures are still reported.
    if ! BENCH_AREA=$area "${cmd[@]}" >"$work/logs/$area.txt" 2>&1; then
        failed+=("$area")
    fi
done

python3 - "$work/json" BENCHMARKS.md "${failed[*]}" <<'PY'
import datetime, glob, json, os, re, statistics, sys

json_dir, doc, failed = sys.argv[1], sys.argv[2], sys.argv[3].split()
order = ["generate", "validate", "inject", "hooks", "prestart"]
rows = []  # (area, name, median, p5, p95, runs)
intervals = {}  # (area, command, reference): 90% interval of the ratio (bench/alternate.py)
for path in sorted(glob.glob(os.path.join(json_dir, "*.json")),
                   key=lambda p: (order.index(os.path.basename(p).split("-")[0]), p)):
    area = os.path.basename(path).split("-")[0]
    export = json.load(open(path))
    for r in export.get("ratios", []):
        intervals[(area, r["command"], r["reference"])] = (r["low"], r["high"])
    for r in export["results"]:
        times = [t * 1000 for t in r["times"]]
        q = statistics.quantiles(times, n=20) if len(times) > 1 else [times[0]] * 19
        name = r["command"]
        if len(name) > 70:  # unnamed commands: the program and subcommand are enough
            name = " ".join(os.path.basename(w) if w.startswith("/") else w
                            for w in name.split()[:3]) + " ..."
        rows.append((area, name, statistics.median(times), q[0], q[-1], len(times)))

def find(area, name):
    return next((r for r in rows if r[0] == area and r[1] == name), None)

# Side-by-side pairs: (area, what, reference, label, how). "faster": how many times faster `what`
# is (reference / what); "over": what `what` adds to the reference (what / reference).
pairs = [
    ("validate", "amdgpu-cdi validate", "Go CDI 0.5.2 (tests/go/cdi-validate)",
     "validate: Go / ours", "faster"),
    ("inject", "amdgpu-cdi", "go-cdi-0.5.2", "inject: Go / ours", "faster"),
    ("hooks", "A/B, Docker bundle: amdgpu-container-runtime run", "A/B, Docker bundle: runc run",
     "wrapper / plain runc run, Docker 20.10 bundle (alternating runs)", "over"),
    ("hooks", "A/B, minimal bundle: amdgpu-container-runtime run", "A/B, minimal bundle: runc run",
     "wrapper / plain runc run, minimal bundle (alternating runs)", "over"),
    ("hooks", "A/B, Docker bundle: runc run", "A/B, Docker bundle: runc run, no devices",
     "runc run with / without the 2 device nodes, Docker 20.10 bundle (alternating runs)", "over"),
    ("hooks", "A/B, minimal bundle: runc run", "A/B, minimal bundle: runc run, no devices",
     "runc run with / without the 2 device nodes, minimal bundle (alternating runs)", "over"),
    ("hooks", "own work, Docker bundle: amdgpu-container-runtime, runtime /bin/true",
     "own work, Docker bundle: /bin/true",
     "wrapper's own work, Docker 20.10 bundle: runtime /bin/true / /bin/true", "over"),
    ("hooks", "own work, minimal bundle: amdgpu-container-runtime, runtime /bin/true",
     "own work, minimal bundle: /bin/true",
     "wrapper's own work, minimal bundle: runtime /bin/true / /bin/true", "over"),
]
# The issues' targets: (area, command, what, limit, test). "ratio" compares with the same
# bundle's "A/B, ...: runc run"; "worst case" is shown beside the target it is not judged by.
targets = [
    ("generate", "amdgpu-cdi generate, 64 partitions", "median", 5.0, "under"),
    ("inject", "amdgpu-cdi", "Go median / ours", 5.0, "faster"),
    ("hooks", "precreate, nothing requested", "median", 1.0, "under"),
    ("hooks", "precreate, 8 GPUs of 64 partitions", "median", 2.0, "under"),
    ("hooks", "precreate, 500k env entries, nothing requested", "median", 1000.0, "under"),
    ("hooks", "precreate, 500k env entries, 1 GPU", "median", 1000.0, "under"),
    ("hooks", "wrapper, 500k env entries, 1 GPU, runtime /bin/true", "median", 1000.0, "under"),
    ("hooks", "A/B, Docker bundle: amdgpu-container-runtime run",
     "median / runc run's, alternating (judged on this bundle, Docker 20.10's)", 1.05, "ratio"),
    ("hooks", "A/B, minimal bundle: amdgpu-container-runtime run",
     "median / runc run's, alternating (the worst case, not judged)", 1.05, "worst case"),
]
load = open("/proc/loadavg").read().split()[0]
out = ["<!-- run-all:begin (generated by bench/run-all.sh; edits here are overwritten) -->",
       "## Summary (`bench/run-all.sh`)", "",
       f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
       f"{os.cpu_count()} cores, load average {load} at the end. Whole-process wall time per "
       "command of the shipped (static-pie) release binaries: hyperfine 1.19 `-N`, except the "
       "`A/B` rows, which `bench/alternate.py` runs in alternation. The wrapper's 5% target "
       "is judged on the Docker 20.10 bundle (`tests/fixtures/oci/docker-20.10-config.json`, "
       "what `docker run` writes); the minimal bundle is its worst case. Spread is the 5th-95th "
       "percentile of the runs. The readings are in each area's section below.", "",
       "| area | command | median | p5 - p95 | runs |", "|---|---|---:|---:|---:|"]
for area, name, med, p5, p95, n in rows:
    out.append(f"| {area} | {name} | {med:.2f} ms | {p5:.2f} - {p95:.2f} ms | {n} |")
pair_rows = []
for area, what, ref, label, how in pairs:
    a, b = find(area, what), find(area, ref)
    if a and b:
        if how == "faster":
            pair_rows.append(f"| {label} | {b[2] / a[2]:.2f}x | {b[2] - a[2]:+.2f} ms |")
        else:
            shown = f"{a[2] / b[2]:.3f}x"
            if (area, what, ref) in intervals:
                low, high = intervals[(area, what, ref)]
                shown += f" (90%: {low:.3f} - {high:.3f})"
            elif (area, ref, what) in intervals:  # measured the other way round
                low, high = intervals[(area, ref, what)]
                shown += f" (90%: {1 / high:.3f} - {1 / low:.3f})"
            pair_rows.append(f"| {label} | {shown} | {a[2] - b[2]:+.2f} ms |")
for bundle, label in (("Docker bundle", "Docker 20.10 bundle"),
                      ("minimal bundle", "minimal bundle")):
    runc, alone, floor = (
        find("hooks", f"A/B, {bundle}: runc run"),
        find("hooks", f"own work, {bundle}: amdgpu-container-runtime, runtime /bin/true"),
        find("hooks", f"own work, {bundle}: /bin/true"))
    if runc and alone and floor:
        pair_rows.append(f"| wrapper's own work as a share of the runc run median, {label} | "
                         f"{(alone[2] - floor[2]) / runc[2] * 100:.1f}% | "
                         f"{alone[2] - floor[2]:+.2f} ms |")
if pair_rows:
    out += ["", "| pair | ratio of medians | difference |", "|---|---:|---:|"] + pair_rows
target_rows = []
for area, name, what, limit, test in targets:
    row = find(area, name)
    if not row:
        continue
    if test == "under":
        value, shown, met = row[2], f"{row[2]:.2f} ms", row[2] < limit
        wanted = f"< {limit:g} ms"
    elif test == "faster":
        go = find(area, "go-cdi-0.5.2")
        if not go:
            continue
        value = go[2] / row[2]
        shown, met, wanted = f"{value:.2f}x", value >= limit, f">= {limit:g}x"
    else:
        base = find(area, name.split(":")[0] + ": runc run")
        if not base:
            continue
        value = row[2] / base[2]
        shown, met, wanted = f"{value:.3f}x", value < limit, f"< {limit:g}x"
        if (area, name, base[1]) in intervals:
            low, high = intervals[(area, name, base[1])]
            shown += f" (90%: {low:.3f} - {high:.3f})"
    result = "met" if met else "**missed**"
    if test == "worst case":
        result = f"not judged ({'under' if met else 'over'} the limit)"
    target_rows.append(f"| {area} | {name}: {what} | {shown} | {wanted} | {result} |")
if target_rows:
    out += ["", "| area | target | measured | limit | result |", "|---|---|---:|---:|---|"]
    out += target_rows
if failed:
    out += ["", "Areas whose script failed or missed its own target: " + ", ".join(failed)
            + " (see target/bench-all/logs/)."]
out.append("<!-- run-all:end -->")
block = "\n".join(out) + "\n"

text = open(doc).read()
pattern = re.compile(r"<!-- run-all:begin.*?<!-- run-all:end -->\n", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
else:  # first run: after the introduction, before the first area section
    at = text.find("\n## ")
    text = text[:at + 1] + block + "\n" + text[at + 1:] if at >= 0 else text + "\n" + block
open(doc, "w").write(text)
print(block)
PY
[ ${#failed[@]} -eq 0 ] || echo "bench/run-all.sh: failed or missed targets: ${failed[*]}" >&2
