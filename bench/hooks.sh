#!/usr/bin/env bash
# Benchmarks of the per-container request path (issue 4), whole process, release build:
#  1. `amdgpu-cdi hook precreate` with nothing requested (target: median < 1 ms);
#  2. the same with 8 GPUs requested on the 64-partition example host (target: median < 2 ms);
#  3. `amdgpu-container-runtime run` against plain `runc run` of the same bundle (target: < 5%).
# Needs root (fake device nodes, runc), hyperfine, busybox-static. Prints hyperfine's tables;
# BENCHMARKS.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins >/dev/null
bin=$PWD/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

host=$PWD/examples/hosts/mi300x-cpx/sys
# A dev root with a fake node for every render node of the example host, and kfd.
mkdir -p "$work/dev/dev/dri"
mknod -m 666 "$work/dev/dev/kfd" c 1 5
for node in "$host"/class/drm/renderD*; do
    mknod -m 666 "$work/dev/dev/dri/${node##*/}" c 1 3
done
for minor in 128 129 130; do # the three-GPU fixture of the wrapper benchmark
    [ -e "$work/dev/dev/dri/renderD$minor" ] || mknod -m 666 "$work/dev/dev/dri/renderD$minor" c 1 3
done
: > "$work/empty.toml"

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
config "" > "$work/none.json"
config "0-7" > "$work/eight.json"

median() { # $1: hyperfine JSON; prints each command's median and min in ms
    python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']}: median {r['median']*1000:.2f} ms, min {r['min']*1000:.2f} ms")
PY
}

# hyperfine 1.15 has no --input: every command runs under the same `sh -c` with a stdin
# redirect, and the `true` baseline measures that shell; the hook's whole-process cost is the
# difference of the medians.
hook="$bin/amdgpu-cdi hook precreate --config $work/empty.toml --sysfs-root $host --dev-root $work/dev"
echo "== precreate hook: nothing requested / 8 of 64 partitions requested"
hyperfine -N --warmup 50 --runs 1000 --export-json "$work/hook.json" \
    -n "baseline: sh -c 'true < config'" "/bin/sh -c 'true < $work/none.json > /dev/null'" \
    -n "precreate, nothing requested" "/bin/sh -c '$hook < $work/none.json > /dev/null'" \
    -n "precreate, 8 GPUs of 64 partitions" "/bin/sh -c '$hook < $work/eight.json > /dev/null'"
median "$work/hook.json"

echo "== runtime wrapper vs plain runc run (same bundle, /bin/true, 1 GPU of the 3-GPU fixture)"
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
config "0" > "$work/bundle-config.json"
runc=$(command -v runc || echo /usr/sbin/runc)
small=$PWD/tests/fixtures/hosts/three-gpus/sys
cat > "$work/wrapper.toml" <<TOML
sysfs-root = "$small"
dev-root = "$work/dev"
runtime = "$runc"
TOML
# The baseline is plain runc on the config the wrapper produces (the same devices injected, e.g.
# by hand or by CDI), so the difference is the wrapper's own cost, not runc creating two more
# device nodes; "runc run, no devices" shows what those nodes cost runc.
"$bin/amdgpu-cdi" hook precreate --config "$work/wrapper.toml" \
    < "$work/bundle-config.json" > "$work/bundle-injected.json"
cd "$bundle"
AMDGPU_CDI_CONFIG=$work/wrapper.toml hyperfine -N --warmup 5 --runs 200 --export-json "$work/runtime.json" \
    --prepare "cp $work/bundle-injected.json $bundle/config.json" \
    -n "runc run" "$runc run -b $bundle bench-runc" \
    --prepare "cp $work/bundle-config.json $bundle/config.json" \
    -n "runc run, no devices" "$runc run -b $bundle bench-runc-plain" \
    --prepare "cp $work/bundle-config.json $bundle/config.json" \
    -n "amdgpu-container-runtime run" "$bin/amdgpu-container-runtime run -b $bundle bench-wrapper"
median "$work/runtime.json"
