#!/usr/bin/env bash
# Runs every benchmark of bench/ and regenerates the summary section of BENCHMARKS.md (between
# the `run-all` markers; the areas' own sections, with their readings, are left as they are).
#
# The area scripts (generate.sh, inject.sh, hooks.sh, prestart.sh) run unchanged; a `hyperfine`
# shim first in PATH copies every JSON export they make into target/bench-all/json/, and their
# output goes to target/bench-all/logs/<area>.txt. `validate` has no area script: it is measured
# here, ours against the reference Go library 0.5.2 (tests/go/cdi-validate) on the largest
# generated spec. Every figure is the median with the 5th-95th percentile spread of its runs;
# every side-by-side pair gets the ratio of the medians.
#
# Needs root (hooks.sh and prestart.sh make device nodes and cgroups), hyperfine, python3,
# golang-go with the Debian CDI library package, busybox-static, runc. A few minutes on a quiet
# machine, more under load.
# Usage: sudo bench/run-all.sh [area...]   (areas: generate validate inject hooks prestart)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/bench-all
areas=("$@")
[ ${#areas[@]} -gt 0 ] || areas=(generate validate inject hooks prestart)

rm -rf "$work/json" "$work/logs" "$work/shim"
mkdir -p "$work/json" "$work/logs" "$work/shim"
real=$(command -v hyperfine) || { echo "bench/run-all.sh: hyperfine is not installed" >&2; exit 1; }
cat >"$work/shim/hyperfine" <<SHIM
#!/usr/bin/env bash
# hyperfine, then a copy of its --export-json file for bench/run-all.sh.
"$real" "\$@"
rc=\$?
prev=
for arg in "\$@"; do
    if [ "\$prev" = --export-json ] && [ -f "\$arg" ]; then
        cp "\$arg" "$work/json/\${BENCH_AREA}-\$(ls "$work/json" | wc -l).json"
    fi
    prev=\$arg
done
exit \$rc
SHIM
chmod +x "$work/shim/hyperfine"

cargo build --release --locked --bins >&2

# validate: ours and the Go reference on the spec generate writes for the 64-partition host.
bench_validate() {
    local out=$work/validate
    mkdir -p "$out"
    (cd tests/go/cdi-validate &&
        GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$out/go-cache" GOFLAGS= \
            go build -o "$out/cdi-validate" .)
    target/release/amdgpu-cdi generate --sysfs-root examples/hosts/mi300x-cpx/sys \
        --dev-root /nonexistent --output "$out/amd.com-gpu.yaml"
    # Both must accept the spec before they are timed.
    target/release/amdgpu-cdi validate "$out/amd.com-gpu.yaml"
    "$out/cdi-validate" "$out/amd.com-gpu.yaml" | grep -q "	valid$"
    hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$out/results.json" \
        -n "amdgpu-cdi validate" "$root/target/release/amdgpu-cdi validate $out/amd.com-gpu.yaml" \
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
    if ! BENCH_AREA=$area PATH="$work/shim:$PATH" "${cmd[@]}" >"$work/logs/$area.txt" 2>&1; then
        failed+=("$area")
    fi
done

python3 - "$work/json" BENCHMARKS.md "${failed[*]}" <<'PY'
import datetime, glob, json, os, re, statistics, sys

json_dir, doc, failed = sys.argv[1], sys.argv[2], sys.argv[3].split()
order = ["generate", "validate", "inject", "hooks", "prestart"]
rows = []  # (area, name, median, p5, p95, runs)
for path in sorted(glob.glob(os.path.join(json_dir, "*.json")),
                   key=lambda p: (order.index(os.path.basename(p).split("-")[0]), p)):
    area = os.path.basename(path).split("-")[0]
    for r in json.load(open(path))["results"]:
        times = [t * 1000 for t in r["times"]]
        q = statistics.quantiles(times, n=20) if len(times) > 1 else [times[0]] * 19
        name = r["command"]
        if len(name) > 70:  # unnamed commands: the program and subcommand are enough
            name = " ".join(os.path.basename(w) if w.startswith("/") else w
                            for w in name.split()[:3]) + " ..."
        rows.append((area, name, statistics.median(times), q[0], q[-1], len(times)))

def find(area, text):
    return next((r for r in rows if r[0] == area and text in r[1]), None)

# Side-by-side pairs: (area, what, reference, label).
pairs = [
    ("validate", "amdgpu-cdi validate", "Go CDI", "validate: Go / ours"),
    ("inject", "amdgpu-cdi", "go-cdi", "inject: Go / ours"),
    ("hooks", "precreate, nothing requested", "baseline", "precreate (nothing requested) / shell baseline"),
    ("hooks", "precreate, 8 GPUs", "baseline", "precreate (8 of 64 partitions) / shell baseline"),
    ("hooks", "amdgpu-container-runtime run", "runc run", "wrapper / plain runc"),
    ("prestart", "8 GPUs, discovery", "baseline", "prestart (8 GPUs, discovery) / shell baseline"),
    ("prestart", "8 GPUs, CDI", "baseline", "prestart (8 GPUs, CDI spec dir) / shell baseline"),
]
load = open("/proc/loadavg").read().split()[0]
out = ["<!-- run-all:begin (generated by bench/run-all.sh; edits here are overwritten) -->",
       "## Summary (`bench/run-all.sh`)", "",
       f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
       f"{os.cpu_count()} cores, load average {load} at the end. Whole-process wall time per "
       "command (hyperfine); spread is the 5th-95th percentile of the runs. The readings are in "
       "each area's section below.", "",
       "| area | command | median | p5 - p95 | runs |", "|---|---|---:|---:|---:|"]
for area, name, med, p5, p95, n in rows:
    out.append(f"| {area} | {name} | {med:.2f} ms | {p5:.2f} - {p95:.2f} ms | {n} |")
out += ["", "| pair | ratio of medians | difference |", "|---|---:|---:|"]
for area, what, ref, label in pairs:
    a, b = find(area, what), find(area, ref)
    if a and b:
        if label.startswith(("validate", "inject")):
            out.append(f"| {label} | {b[2] / a[2]:.2f}x | {b[2] - a[2]:+.2f} ms |")
        else:
            out.append(f"| {label} | {a[2] / b[2]:.2f}x | {a[2] - b[2]:+.2f} ms |")
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
