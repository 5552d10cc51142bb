#!/usr/bin/env bash
# Compares two builds of the shipped binaries on the per-container commands, in alternation
# (bench/alternate.py: every round runs each command once, order reversed every other round), so
# a drifting machine affects both builds alike: the precreate hook with nothing requested and
# with 8 GPUs of the 64-partition host, the runtime wrapper's own work (runtime /bin/true) on a
# one-GPU request, and generate for the 64-partition host. The floor is /bin/true given the same
# input through the same `sh -c 'exec ...'` wrapper. Used to check that a change (a reshape, a
# new feature on the hook path) costs the per-container path nothing.
#
#   sudo bench/compare-builds.sh OLD_BIN_DIR [ROUNDS]
#
# OLD_BIN_DIR holds the other build's amdgpu-cdi and amdgpu-container-runtime (build it with
# scripts/build-release in a worktree of the other commit); the new build is this tree's
# (BENCH_BIN_DIR or scripts/build-release). ROUNDS defaults to 400.
set -euo pipefail
. "$(dirname "$0")/common.sh"
[ $# -ge 1 ] || { echo "usage: bench/compare-builds.sh OLD_BIN_DIR [ROUNDS]" >&2; exit 2; }
old=$(cd "$1" && pwd)
rounds=${2:-400}
for binary in amdgpu-cdi amdgpu-container-runtime; do
    [ -x "$old/$binary" ] || { echo "bench/compare-builds.sh: $old/$binary does not exist" >&2; exit 2; }
done

work=$(mktemp -d)
mount -t tmpfs -o mode=0700 amdgpu-cdi-bench "$work"
trap 'cd /; umount "$work"; rmdir "$work"' EXIT

host=$repo/examples/hosts/mi300x-cpx/sys
mkdir -p "$work/dev/dev/dri" "$work/bundle"
mknod -m 666 "$work/dev/dev/kfd" c 1 5
for node in "$host"/class/drm/renderD*; do
    mknod -m 666 "$work/dev/dev/dri/${node##*/}" c 1 3
done
: >"$work/empty.toml"
cat >"$work/wrapper.toml" <<TOML
sysfs-root = "$host"
dev-root = "$work/dev"
runtime = "/bin/true"
TOML
config() { # $1: AMD_VISIBLE_DEVICES value (empty: unset)
    local env='"PATH=/bin"'
    [ -n "$1" ] && env="$env, \"AMD_VISIBLE_DEVICES=$1\""
    printf '%s\n' "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"/bin/true\"],\"env\":[$env],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},\"linux\":{\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}}}"
}
config "" >"$work/none.json"
config "0-7" >"$work/eight.json"
config "0" >"$work/one.json"

hook() { # $1: bin dir, $2: input
    echo "sh -c 'exec $1/amdgpu-cdi hook precreate --config $work/empty.toml --sysfs-root $host --dev-root $work/dev < $2 > /dev/null'"
}
for dir in "$old" "$bin"; do # both builds must do the work before they are timed
    "$dir/amdgpu-cdi" hook precreate --config "$work/empty.toml" --sysfs-root "$host" \
        --dev-root "$work/dev" <"$work/eight.json" | grep -q renderD135 ||
        { echo "bench/compare-builds.sh: $dir did not inject" >&2; exit 1; }
done

export AMDGPU_CDI_CONFIG=$work/wrapper.toml
run() { # $@: alternate.py arguments
    python3 bench/alternate.py --runs "$rounds" --warmup 20 "$@"
}
echo "== precreate, nothing requested"
run -n "floor: /bin/true" "sh -c 'exec /bin/true < $work/none.json'" \
    -n old "$(hook "$old" "$work/none.json")" -n new "$(hook "$bin" "$work/none.json")" --reference old
echo "== precreate, 8 GPUs of 64 partitions"
run -n old "$(hook "$old" "$work/eight.json")" -n new "$(hook "$bin" "$work/eight.json")"
echo "== wrapper's own work, one GPU, runtime /bin/true"
run -n "floor: /bin/true" --prepare "cp $work/one.json $work/bundle/config.json" "/bin/true run -b $work/bundle bench" \
    -n old --prepare "cp $work/one.json $work/bundle/config.json" "$old/amdgpu-container-runtime run -b $work/bundle bench" \
    -n new --prepare "cp $work/one.json $work/bundle/config.json" "$bin/amdgpu-container-runtime run -b $work/bundle bench" \
    --reference old
echo "== generate, 64 partitions"
run -n old "$old/amdgpu-cdi generate --sysfs-root $host --dev-root $work/dev --output $work/old.yaml" \
    -n new "$bin/amdgpu-cdi generate --sysfs-root $host --dev-root $work/dev --output $work/new.yaml"
