#!/usr/bin/env bash
# Benchmarks of the per-container request path (issue 4), whole process, on the shipped (static)
# release binaries:
#  1. `amdgpu-cdi hook precreate` with nothing requested (target: median < 1 ms);
#  2. the same with 8 GPUs requested on the 64-partition example host (target: median < 2 ms);
#  3. `amdgpu-container-runtime run` against plain `runc run` of the same bundle (target: < 5%,
#     judged on the bundle Docker 20.10 writes; a minimal hand-written bundle is the worst case),
#     in alternating runs (bench/alternate.py), plus the wrapper's own work alone on each bundle:
#     the wrapper with `/bin/true` as its runtime against `/bin/true` (hyperfine);
#  4. the hook and the wrapper on a config with 500k environment entries (issue 12: target
#     median < 1000 ms each; /bin/true given the same input is the floor).
# The hook reads the OCI config on stdin: hyperfine's `--input` gives it the file directly, so
# the figures are the hook's process alone, no shell. `/bin/true` and an empty static Rust
# program are measured beside it as the floor of any process on this machine.
# Needs root (fake device nodes, runc), busybox-static, python3. Prints every figure, then the
# targets; exits 1 when a median misses its target. RUNS=N sets the number of alternating rounds
# of each wrapper comparison (default 1000, about 3 minutes for both). BENCHMARKS.md records
# the figures.
set -euo pipefail
. "$(dirname "$0")/common.sh"
# Everything the commands read and write (bundle, runc's state, dev root) is on a private tmpfs,
# as on a host where the engines keep bundles and runc state under /run: disk writeback from one
# run does not land in the next run's time.
work=$(mktemp -d)
mount -t tmpfs -o mode=0700 amdgpu-cdi-bench "$work"
cgroup_parents=() # cgroup directories runc creates for the Docker bundle (see below)
cleanup() {
    cd /
    umount "$work"
    rmdir "$work"
    for dir in "${cgroup_parents[@]}"; do
        [ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true
    done
}
trap cleanup EXIT

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
# Two bundles, both busybox running /bin/true with AMD_VISIBLE_DEVICES=0 in the environment:
#  - minimal: the hand-written config above (5 namespaces, 2 mounts, no seccomp), the least work
#    runc can have, so the wrapper's largest share of it: the worst case, reported, not judged;
#  - docker: the config Docker 20.10 writes for `docker run` with its defaults
#    (tests/fixtures/oci/docker-20.10-config.json, captured by bench/capture-docker-config.sh):
#    default seccomp profile, 14 capabilities, 10 mounts, masked and read-only paths, sysctls, a
#    cgroupsPath. That is the bundle the wrapper is for (Docker < 25, containerd); the 5% target
#    is judged on it.
runc="$(command -v runc || echo /usr/sbin/runc) --root $work/runc"
bundle=$work/bundle
docker_bundle=$work/docker-bundle
for dir in "$bundle" "$docker_bundle"; do
    mkdir -p "$dir/rootfs/bin"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    ln -s busybox "$dir/rootfs/bin/true"
done
config "0" >"$work/bundle-config.json"
# The files Docker bind-mounts from its own directory (the fixture names them relative to the
# bundle), and the cgroupsPath's container id: one per run of this script, /docker/<64 hex digits>
# as Docker writes it. runc creates the /docker parent where it is missing; it is removed on exit.
mkdir -p "$docker_bundle/container"
echo "nameserver 127.0.0.1" >"$docker_bundle/container/resolv.conf"
echo "docker-bench" >"$docker_bundle/container/hostname"
printf '127.0.0.1\tlocalhost\n' >"$docker_bundle/container/hosts"
for dir in /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
    [ -d "${dir%/docker}" ] && [ ! -e "$dir" ] && cgroup_parents+=("$dir")
done
cgroup_id=$(printf 'amdgpu-cdi-bench %s %s' "$$" "$(date +%s%N)" | sha256sum | cut -c1-64)
python3 - "$repo/tests/fixtures/oci/docker-20.10-config.json" "$cgroup_id" \
    >"$work/docker-config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["process"]["env"].append("AMD_VISIBLE_DEVICES=0")
config["linux"]["cgroupsPath"] = "/docker/" + sys.argv[2]
print(json.dumps(config, separators=(",", ":")))  # compact, as Docker writes it
PY
small=$repo/tests/fixtures/hosts/three-gpus/sys
cat >"$work/wrapper.toml" <<TOML
sysfs-root = "$small"
dev-root = "$work/dev"
runtime = "${runc%% *}"
TOML
sed 's|^runtime = .*|runtime = "/bin/true"|' "$work/wrapper.toml" >"$work/wrapper-true.toml"
# The baseline is plain runc on the config the wrapper produces (the same devices injected, e.g.
# by hand or by CDI), so the difference is the wrapper's own cost, not runc creating two more
# device nodes; "runc run, no devices" shows what those nodes cost runc. The precreate hook
# writes it here; the wrapper's own output is checked byte for byte against it below.
for name in bundle docker; do
    "$bin/amdgpu-cdi" hook precreate --config "$work/wrapper.toml" \
        <"$work/$name-config.json" >"$work/$name-injected.json"
done
cd "$bundle"

# First the wrapper's own work, with little noise: the wrapper reads its settings, discovers,
# injects into config.json and execs /bin/true with runc's arguments; the same /bin/true alone
# is the rest. The config is restored before each run.
own_work() { # $1: bundle dir, $2: its config, $3: the baseline's config, $4: label, $5: export
    cp "$2" "$1/config.json"
    AMDGPU_CDI_CONFIG=$work/wrapper-true.toml "$bin/amdgpu-container-runtime" run -b "$1" bench
    grep -q renderD "$1/config.json" ||
        { echo "bench/hooks.sh: the wrapper did not inject into $1/config.json" >&2; exit 1; }
    cmp "$1/config.json" "$3" || {
        echo "bench/hooks.sh: the wrapper's $1/config.json is not the baseline's $3" >&2
        exit 1
    }
    sync
    AMDGPU_CDI_CONFIG=$work/wrapper-true.toml hyperfine -N --warmup 20 --runs 1000 \
        --export-json "$5" --prepare "cp $2 $1/config.json" \
        -n "own work, $4: /bin/true" "/bin/true run -b $1 bench" \
        -n "own work, $4: amdgpu-container-runtime, runtime /bin/true" \
        "$bin/amdgpu-container-runtime run -b $1 bench"
}
own_work "$bundle" "$work/bundle-config.json" "$work/bundle-injected.json" "minimal bundle" \
    "$work/wrapper-own.json"
own_work "$docker_bundle" "$work/docker-config.json" "$work/docker-injected.json" \
    "Docker bundle" "$work/wrapper-own-docker.json"

# A config with 500k environment entries (issue 12 item 3: the environment was parsed in
# quadratic time, 100k entries cost the precreate hook 16 s of CPU): the minimal bundle's config
# with `VAR<i>=<i>` entries before its own, 8.4 MB. The hook with nothing requested (`void`) and
# with GPU 0 requested, and the wrapper with GPU 0 requested and /bin/true as its runtime; the
# floor is /bin/true given the same input. Target: each median well under a second (< 1000 ms).
big_env() { # $1: the config to grow, on stdout
    python3 - "$1" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["process"]["env"][:0] = [f"VAR{i}={i}" for i in range(500_000)]
print(json.dumps(config, separators=(",", ":")))
PY
}
config "void" >"$work/void-config.json"
big_env "$work/void-config.json" >"$work/env-500k-void.json"
big_env "$work/bundle-config.json" >"$work/env-500k.json"
$hook <"$work/env-500k.json" | grep -q '"path":"/dev/dri/renderD' ||
    { echo "bench/hooks.sh: the hook did not inject into the 500k-entry config" >&2; exit 1; }
cp "$work/env-500k.json" "$bundle/config.json"
AMDGPU_CDI_CONFIG=$work/wrapper-true.toml "$bin/amdgpu-container-runtime" run -b "$bundle" bench
grep -q renderD "$bundle/config.json" ||
    { echo "bench/hooks.sh: the wrapper did not inject into the 500k-entry config" >&2; exit 1; }
sync
echo "== 500k environment entries: precreate hook and wrapper, whole process"
hyperfine -N --warmup 3 --runs 30 --input "$work/env-500k-void.json" --output null \
    --export-json "$work/env-500k-void-hook.json" \
    -n "floor, 500k env entries on stdin: /bin/true" /bin/true \
    -n "precreate, 500k env entries, nothing requested" "$hook"
hyperfine -N --warmup 3 --runs 30 --input "$work/env-500k.json" --output null \
    --export-json "$work/env-500k-hook.json" \
    -n "precreate, 500k env entries, 1 GPU" "$hook"
AMDGPU_CDI_CONFIG=$work/wrapper-true.toml hyperfine -N --warmup 3 --runs 30 \
    --export-json "$work/env-500k-wrapper.json" \
    --prepare "cp $work/env-500k.json $bundle/config.json" \
    -n "wrapper, 500k env entries, 1 GPU, runtime /bin/true" \
    "$bin/amdgpu-container-runtime run -b $bundle bench"
print_medians "$work/env-500k-void-hook.json" "$work/env-500k-hook.json" \
    "$work/env-500k-wrapper.json"

# Then the whole: runc's run time varies by several milliseconds between runs and drifts with the
# machine's load; alternating the commands run by run keeps that drift out of their difference.
# The wrapper runs runc with --root too: runc's global options reach it unchanged.
alternate() { # $1: bundle dir, $2: its config, $3: the baseline's config, $4: label, $5: export
    sync
    AMDGPU_CDI_CONFIG=$work/wrapper.toml "$repo/bench/alternate.py" --warmup 5 \
        --runs "${RUNS:-1000}" --export-json "$5" \
        -n "A/B, $4: runc run" --prepare "cp $3 $1/config.json" "$runc run -b $1 bench-runc" \
        -n "A/B, $4: amdgpu-container-runtime run" --prepare "cp $2 $1/config.json" \
        "$bin/amdgpu-container-runtime --root $work/runc run -b $1 bench-wrapper" \
        -n "A/B, $4: runc run, no devices" --prepare "cp $2 $1/config.json" \
        "$runc run -b $1 bench-runc-plain"
    collect "$5"
}
alternate "$bundle" "$work/bundle-config.json" "$work/bundle-injected.json" "minimal bundle" \
    "$work/runtime.json"
alternate "$docker_bundle" "$work/docker-config.json" "$work/docker-injected.json" \
    "Docker bundle" "$work/runtime-docker.json"
print_medians "$work/wrapper-own.json" "$work/wrapper-own-docker.json" "$work/runtime.json" \
    "$work/runtime-docker.json"

echo "== targets"
missed=0
check_median "$work/hook-none.json" "precreate, nothing requested" 1 || missed=1
check_median "$work/hook-eight.json" "precreate, 8 GPUs of 64 partitions" 2 || missed=1
check_median "$work/env-500k-void-hook.json" "precreate, 500k env entries, nothing requested" \
    1000 || missed=1
check_median "$work/env-500k-hook.json" "precreate, 500k env entries, 1 GPU" 1000 || missed=1
check_median "$work/env-500k-wrapper.json" "wrapper, 500k env entries, 1 GPU, runtime /bin/true" \
    1000 || missed=1
python3 - "$work" <<'PY' || missed=1
import json, statistics, sys
def load(name):
    export = json.load(open(f"{sys.argv[1]}/{name}"))
    medians = {r["command"]: statistics.median(r["times"]) * 1000 for r in export["results"]}
    return medians, {r["command"]: (r["low"], r["high"]) for r in export.get("ratios", [])}
judged = None
for label, ab_file, own_file, role in (
        ("minimal bundle", "runtime.json", "wrapper-own.json", "the worst case, not judged"),
        ("Docker bundle", "runtime-docker.json", "wrapper-own-docker.json", "judged")):
    (ab, intervals), (own, _) = load(ab_file), load(own_file)
    wrapper_name = f"A/B, {label}: amdgpu-container-runtime run"
    runc, wrapper = ab[f"A/B, {label}: runc run"], ab[wrapper_name]
    alone = (own[f"own work, {label}: amdgpu-container-runtime, runtime /bin/true"]
             - own[f"own work, {label}: /bin/true"])
    print(f"{label}: the wrapper's own work (runtime /bin/true, minus /bin/true): "
          f"{alone:+.2f} ms, {alone / runc * 100:.1f}% of the runc run median")
    ratio = wrapper / runc
    low, high = intervals[wrapper_name]
    verdict = "met" if ratio < 1.05 else "MISSED"
    if role != "judged":
        verdict = f"{role} ({verdict.lower()})"
    print(f"target: wrapper / runc run, {label} (alternating, medians): {wrapper:.2f} / "
          f"{runc:.2f} ms = {ratio:.3f}x (90% interval {low:.3f} - {high:.3f}) < 1.05x: "
          f"{verdict}")
    if role == "judged":
        judged = ratio
sys.exit(0 if judged < 1.05 else 1)
PY
exit "$missed"
