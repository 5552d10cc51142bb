#!/usr/bin/env bash
# Benchmarks of the per-container request path (issue 4), whole process, on the shipped (static)
# release binaries:
#  1. `amdgpu-cdi hook precreate` with nothing requested (target: median < 1 ms);
#  2. the same with 8 GPUs requested on the 64-partition example host (target: median < 2 ms);
#  3. `amdgpu-container-runtime run` against plain `runc run` of the same bundle (target: < 5%),
#     in alternating runs (bench/alternate.py), plus the wrapper's own work alone: the wrapper
#     with `/bin/true` as its runtime against `/bin/true` (hyperfine).
# The hook reads the OCI config on stdin: hyperfine's `--input` gives it the file directly, so
# the figures are the hook's process alone, no shell. `/bin/true` and an empty static Rust
# program are measured beside it as the floor of any process on this machine.
# Needs root (fake device nodes, runc), busybox-static, python3. Prints every figure, then the
# targets; exits 1 when a median misses its target. RUNS=N sets the number of alternating rounds
# of the wrapper comparison (default 300, about 20 s). BENCHMARKS.md records the figures.
set -euo pipefail
. "$(dirname "$0")/common.sh"
# Everything the commands read and write (bundle, runc's state, dev root) is on a private tmpfs,
# as on a host where the engines keep bundles and runc state under /run: disk writeback from one
# run does not land in the next run's time.
work=$(mktemp -d)
mount -t tmpfs -o mode=0700 amdgpu-cdi-bench "$work"
trap 'cd /; umount "$work"; rmdir "$work"' EXIT

host=$repo/examples/hosts/mi300x-cpx/sys
# A dev root with a fake node for every render node of the example host, and kfd.
mkdir -p "$work/dev/dev/dri"
mknod -m 666 "$work/dev/dev/kfd" c 1 5
for node in "$host"/class/drm/renderD*; do
    mknod -m 666 "$work/dev/dev/dri/${node##*/}" c 1 3
done
for minor in 128 129 130; do # the three-GPU fixture of the wrapper benchmark
    [ -e "$work/dev/dev/dri/renderD$minor" ] || mknod -m 666 "$work/dev/dev/dri/renderD$minor" c 1 3
done
: >"$work/empty.toml"

config() { # $1: AMD_VISIBLE_DEVICES value (empty: unset)
    local env='"PATH=/bin"'
    [ -n "$1" ] && env="$env, \"AMD_VISIBLE_DEVICES=$1\""
    cat <<JSON
{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["/bin/true"],
 "env":[$env],"cwd":"/","capabilities":{"bounding":["CAP_CHOWN"]},"noNewPrivileges":true},
 "root":{"path":"rootfs"},"hostname":"bench",
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
           {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}],
 "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},
          "namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}]}}
JSON
}
config "" >"$work/none.json"
config "0-7" >"$work/eight.json"

hook="$bin/amdgpu-cdi hook precreate --config $work/empty.toml --sysfs-root $host --dev-root $work/dev"
# Both inputs must work before they are timed (8 devices: kfd and 8 render nodes).
$hook <"$work/none.json" >/dev/null
[ "$($hook <"$work/eight.json" | grep -o '"path":"/dev/dri/renderD[0-9]*"' | sort -u | wc -l)" -eq 8 ] ||
    { echo "bench/hooks.sh: the hook did not inject 8 render nodes" >&2; exit 1; }

empty=$(empty_program)

echo "== precreate hook, whole process (hyperfine -N --input)"
# hyperfine's --input is one file for all commands of a call, hence one call per input.
hyperfine -N --warmup 50 --runs 1000 --input "$work/none.json" --output null \
    --export-json "$work/hook-none.json" \
    -n "floor: /bin/true" /bin/true \
    -n "floor: empty static Rust program" "$empty" \
    -n "precreate, nothing requested" "$hook"
hyperfine -N --warmup 50 --runs 1000 --input "$work/eight.json" --output null \
    --export-json "$work/hook-eight.json" \
    -n "precreate, 8 GPUs of 64 partitions" "$hook"
print_medians "$work/hook-none.json" "$work/hook-eight.json"
sync

echo "== runtime wrapper vs plain runc run (same bundle, /bin/true, 1 GPU of the 3-GPU fixture)"
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
config "0" >"$work/bundle-config.json"
runc="$(command -v runc || echo /usr/sbin/runc) --root $work/runc"
small=$repo/tests/fixtures/hosts/three-gpus/sys
cat >"$work/wrapper.toml" <<TOML
sysfs-root = "$small"
dev-root = "$work/dev"
runtime = "${runc%% *}"
TOML
sed 's|^runtime = .*|runtime = "/bin/true"|' "$work/wrapper.toml" >"$work/wrapper-true.toml"
# The baseline is plain runc on the config the wrapper produces (the same devices injected, e.g.
# by hand or by CDI), so the difference is the wrapper's own cost, not runc creating two more
# device nodes; "runc run, no devices" shows what those nodes cost runc.
"$bin/amdgpu-cdi" hook precreate --config "$work/wrapper.toml" \
    <"$work/bundle-config.json" >"$work/bundle-injected.json"
cd "$bundle"

# First the wrapper's own work, with little noise: the wrapper reads its settings, discovers,
# injects into config.json and execs /bin/true with runc's arguments; the same /bin/true alone
# is the rest. The config is restored before each run.
cp "$work/bundle-config.json" "$bundle/config.json"
AMDGPU_CDI_CONFIG=$work/wrapper-true.toml "$bin/amdgpu-container-runtime" run -b "$bundle" bench
grep -q renderD "$bundle/config.json" ||
    { echo "bench/hooks.sh: the wrapper did not inject into $bundle/config.json" >&2; exit 1; }
sync
AMDGPU_CDI_CONFIG=$work/wrapper-true.toml hyperfine -N --warmup 20 --runs 1000 \
    --export-json "$work/wrapper-own.json" \
    --prepare "cp $work/bundle-config.json $bundle/config.json" \
    -n "wrapper alone: /bin/true run" "/bin/true run -b $bundle bench" \
    -n "wrapper alone: amdgpu-container-runtime run, runtime /bin/true" \
    "$bin/amdgpu-container-runtime run -b $bundle bench"

# Then the whole: runc's run time varies by several milliseconds between runs and drifts with the
# machine's load; alternating the commands run by run keeps that drift out of their difference.
# The wrapper runs runc with --root too: runc's global options reach it unchanged.
sync
AMDGPU_CDI_CONFIG=$work/wrapper.toml "$repo/bench/alternate.py" --warmup 5 --runs "${RUNS:-300}" \
    --export-json "$work/runtime.json" \
    -n "A/B: runc run" --prepare "cp $work/bundle-injected.json $bundle/config.json" \
    "$runc run -b $bundle bench-runc" \
    -n "A/B: amdgpu-container-runtime run" --prepare "cp $work/bundle-config.json $bundle/config.json" \
    "$bin/amdgpu-container-runtime --root $work/runc run -b $bundle bench-wrapper" \
    -n "A/B: runc run, no devices" --prepare "cp $work/bundle-config.json $bundle/config.json" \
    "$runc run -b $bundle bench-runc-plain"
collect "$work/runtime.json"
print_medians "$work/wrapper-own.json" "$work/runtime.json"

echo "== targets"
missed=0
check_median "$work/hook-none.json" "precreate, nothing requested" 1 || missed=1
check_median "$work/hook-eight.json" "precreate, 8 GPUs of 64 partitions" 2 || missed=1
python3 - "$work/runtime.json" "$work/wrapper-own.json" <<'PY' || missed=1
import json, statistics, sys
def medians(path):
    return {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(path))["results"]}
ab, own = medians(sys.argv[1]), medians(sys.argv[2])
runc, wrapper = ab["A/B: runc run"], ab["A/B: amdgpu-container-runtime run"]
alone = (own["wrapper alone: amdgpu-container-runtime run, runtime /bin/true"]
         - own["wrapper alone: /bin/true run"])
print(f"the wrapper's own work (runtime /bin/true, minus /bin/true): {alone:+.2f} ms, "
      f"{alone / runc * 100:.1f}% of the runc run median")
ratio = wrapper / runc
verdict = "met" if ratio < 1.05 else "MISSED"
print(f"target: wrapper / runc run (alternating, medians): {wrapper:.2f} / {runc:.2f} ms = "
      f"{ratio:.3f}x < 1.05x: {verdict}")
sys.exit(0 if ratio < 1.05 else 1)
PY
exit "$missed"
