#!/usr/bin/env bash
# Benchmark of `amdgpu-cdi hook prestart`: the whole hook process per container, with 8 GPUs
# requested (kfd + 8 render nodes created, 9 cgroup v1 rules written) found by live discovery of
# examples/hosts/mi300x-spx or from a CDI spec dir, and with nothing requested.
# Needs root (mknod, cgroups) and python3. The "container" is a sleeping process in a scratch
# device cgroup; its rootfs is a plain directory reset before each run. The hook reads the
# container state on stdin: hyperfine's `--input` gives it the file directly, no shell.
#
# Usage: bench/prestart.sh [path/to/amdgpu-cdi]   (default: the shipped static release binary,
#                                                  built here with scripts/build-release)
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/prestart.sh: needs root" >&2; exit 1; }
if [ -n "${1:-}" ]; then
    cdi=$(realpath "$1")
    BENCH_BIN_DIR=$(dirname "$cdi") # nothing to build
fi
. "$(dirname "$0")/common.sh"
cdi=${cdi:-$bin/amdgpu-cdi}

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

discover="$cdi hook prestart --config $work/discover.toml --sysfs-root $sysfs --dev-root $work/devroot"
fromcdi="$cdi hook prestart --config $work/cdi.toml"
reset="rm -rf $work/bundle/rootfs/dev && mkdir $work/bundle/rootfs/dev"

config "0-7"
for run in "$discover" "$fromcdi"; do
    eval "$reset"
    $run <"$work/state.json" || { echo "bench/prestart.sh: the hook failed: $run" >&2; exit 1; }
    [ "$(ls "$work/bundle/rootfs/dev/dri" | wc -l)" -eq 8 ] ||
        { echo "bench/prestart.sh: expected 8 render nodes" >&2; exit 1; }
done

# The rootfs dev/ is reset before every run (a shell for the reset only; it is not timed).
hyperfine -N --warmup 10 --runs 300 --input "$work/state.json" --export-json "$work/eight.json" \
    --prepare "/bin/sh -c '$reset'" \
    -n "floor: /bin/true" /bin/true \
    -n "prestart, 8 GPUs, discovery" "$discover" \
    -n "prestart, 8 GPUs, CDI spec dir" "$fromcdi"
config ""
hyperfine -N --warmup 10 --runs 300 --input "$work/state.json" --export-json "$work/none.json" \
    -n "prestart, nothing requested" "$discover"
print_medians "$work/eight.json" "$work/none.json"
