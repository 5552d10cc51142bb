#!/usr/bin/env bash
# Benchmark of `amdgpu-cdi hook prestart`: the whole hook process per container, with 8 GPUs
# requested (kfd + 8 render nodes created, 9 cgroup v1 rules written) found by live discovery of
# examples/hosts/mi300x-spx or from a CDI spec dir, and with nothing requested.
# Needs root (mknod, cgroups) and hyperfine. The "container" is a sleeping process in a scratch
# device cgroup; its rootfs is a plain directory reset before each run.
#
# Usage: bench/prestart.sh [path/to/amdgpu-cdi]   (default: target/release/amdgpu-cdi, built here)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked --bin amdgpu-cdi >&2
    bin="$PWD/target/release/amdgpu-cdi"
fi
[ "$(id -u)" -eq 0 ] || { echo "bench/prestart.sh: needs root" >&2; exit 1; }

work="$(mktemp -d /tmp/amdgpu-cdi-bench.XXXXXX)"
cgroup=""
sleeper=""
cleanup() {
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null && wait "$sleeper" 2>/dev/null || true
    [ -n "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Fake host: the 8-GPU MI300X example host's sysfs with a fake /dev holding kfd and its 8 render
# nodes (read from the fixture's KFD topology), and the same GPUs as a CDI spec dir.
sysfs="$PWD/examples/hosts/mi300x-spx/sys"
mkdir -p "$work/devroot/dev/dri" "$work/cdi" "$work/bundle/rootfs/dev"
mknod "$work/devroot/dev/kfd" c 10 229
nodes=""
i=0
for minor in $(cat "$sysfs"/class/kfd/kfd/topology/nodes/*/properties |
    awk '$1 == "drm_render_minor" && $2 != 0 { print $2 }' | sort -n); do
    mknod "$work/devroot/dev/dri/renderD$minor" c 226 "$minor"
    nodes="$nodes${nodes:+,}{\"name\":\"$i\",\"containerEdits\":{\"deviceNodes\":[{\"path\":\"/dev/dri/renderD$minor\",\"hostPath\":\"$work/devroot/dev/dri/renderD$minor\"}]}}"
    i=$((i + 1))
done
[ "$i" -eq 8 ] || { echo "bench/prestart.sh: expected 8 GPUs in $sysfs, found $i" >&2; exit 1; }
cat >"$work/cdi/amd.com-gpu.json" <<EOF
{"cdiVersion":"0.5.0","kind":"amd.com/gpu","devices":[$nodes],
 "containerEdits":{"deviceNodes":[{"path":"/dev/kfd","hostPath":"$work/devroot/dev/kfd"}]}}
EOF
: >"$work/discover.toml"
printf 'device-source = "cdi"\nspec-dirs = ["%s"]\n' "$work/cdi" >"$work/cdi.toml"

config() {
    cat >"$work/bundle/config.json" <<EOF
{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "process":{"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","AMD_VISIBLE_DEVICES=$1"]},
 "linux":{"namespaces":[{"type":"pid"}],"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}
EOF
}

# The stand-in container process, in a scratch v1 device cgroup when one is mounted.
sleep 600 &
sleeper=$!
if [ -d /sys/fs/cgroup/devices ]; then
    cgroup="/sys/fs/cgroup/devices/amdgpu-cdi-bench-$$"
    mkdir "$cgroup"
    echo "$sleeper" >"$cgroup/cgroup.procs"
fi
printf '{"ociVersion":"1.0.2","id":"bench","status":"created","pid":%s,"bundle":"%s"}' \
    "$sleeper" "$work/bundle" >"$work/state.json"

discover="$bin hook prestart --config $work/discover.toml --sysfs-root $sysfs --dev-root $work/devroot"
fromcdi="$bin hook prestart --config $work/cdi.toml"
reset="rm -rf $work/bundle/rootfs/dev && mkdir $work/bundle/rootfs/dev"

config "0-7"
for run in "$discover" "$fromcdi"; do
    eval "$reset"
    $run <"$work/state.json" || { echo "bench/prestart.sh: the hook failed: $run" >&2; exit 1; }
    [ "$(ls "$work/bundle/rootfs/dev/dri" | wc -l)" -eq 8 ] ||
        { echo "bench/prestart.sh: expected 8 render nodes" >&2; exit 1; }
done

median() { # $1: hyperfine JSON; prints each command's median and min in ms
    python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {r['command']} | {r['median']*1000:.2f} ms | {r['min']*1000:.2f} ms |")
PY
}

# hyperfine 1.15 has no --input: every command runs under the same `sh -c` with a stdin redirect
# (-N: no extra shell), and the baseline measures that shell; the hook's whole-process cost is the
# difference of the medians. The rootfs dev/ is reset before every run (also for the baseline).
hyperfine -N --warmup 10 --runs 300 --export-json "$work/eight.json" \
    --prepare "/bin/sh -c '$reset'" \
    -n "baseline: sh -c 'true < state'" "/bin/sh -c 'true < $work/state.json'" \
    -n "prestart, 8 GPUs, discovery" "/bin/sh -c '$discover < $work/state.json'" \
    -n "prestart, 8 GPUs, CDI spec dir" "/bin/sh -c '$fromcdi < $work/state.json'"
config ""
hyperfine -N --warmup 10 --runs 300 --export-json "$work/none.json" \
    -n "prestart, nothing requested" "/bin/sh -c '$discover < $work/state.json'"
echo "| command | median | min |"
echo "|---|---:|---:|"
median "$work/eight.json"
median "$work/none.json"
