#!/usr/bin/env bash
# Benchmark of the device plugin (`amdgpu-cdi-device-plugin`, release build) against the Go
# kubelet stand-in (tests/go/kubelet-standin, the official v1beta1 API and grpc-go) on the
# 64-partition example host examples/hosts/mi300x-cpx with a fake /dev:
#
# - Allocate round trip, p50 and p99, measured by the stand-in (one container, 1 and 8 devices);
# - the plugin's resident memory (VmRSS and its peak VmHWM) after that;
# - its CPU time and context switches over an idle minute (the stand-in connected, nothing
#   changing), from /proc/PID/stat and /proc/PID/status;
# - how long from a render node's removal to `Unhealthy` arriving at the stand-in, and back to
#   `Healthy` after it returns (20 rounds; both clocks CLOCK_REALTIME).
#
# Needs root (the stand-in is built in the sid engine root by tests/go/build-kubelet-standin)
# and python3. IDLE_SECONDS (default 60) and ROUNDS (default 2000 Allocate calls) change the
# lengths. Prints Markdown tables.
#
# Usage: sudo bench/device-plugin.sh [path/to/amdgpu-cdi-device-plugin]
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/device-plugin.sh: needs root" >&2; exit 1; }
cd "$(dirname "$0")/.."
out=$PWD/target/bench-device-plugin
mkdir -p "$out"
if [ -n "${1:-}" ]; then
    plugin=$(realpath "$1")
else
    cargo build --release --locked -p amdgpu-cdi-device-plugin --bin amdgpu-cdi-device-plugin >&2
    plugin=$PWD/target/release/amdgpu-cdi-device-plugin
fi
tests/go/build-kubelet-standin "$out/kubelet-standin"

work=$(mktemp -d /tmp/amdgpu-cdi-bench-dp.XXXXXX)
trap 'rm -rf "$work"' EXIT
sysfs=$PWD/examples/hosts/mi300x-cpx/sys
mkdir -p "$work/dev/dri" "$work/device-plugins" "$work/cdi"
mknod "$work/dev/kfd" c 10 229
for node in "$sysfs"/class/drm/renderD*; do
    minor=${node##*renderD}
    mknod "$work/dev/dri/renderD$minor" c 226 "$minor"
done

python3 - "$plugin" "$out/kubelet-standin" "$work" "$sysfs" "${IDLE_SECONDS:-60}" \
    "${ROUNDS:-2000}" <<'PY'
import json, os, statistics, subprocess, sys, time

plugin_bin, standin_bin, work, sysfs, idle, rounds = sys.argv[1:7]
idle, rounds = int(idle), int(rounds)
log = open(os.path.join(work, "plugin.log"), "w")
plugin = subprocess.Popen(
    [plugin_bin, "--device-plugin-dir", f"{work}/device-plugins", "--cdi-dir", f"{work}/cdi",
     "--sysfs-root", sysfs, "--dev-root", work], stderr=log)
# The plugin writes its spec and serves before the kubelet exists; the stand-in empties the
# directory and creates kubelet.sock, as a starting kubelet does.
time.sleep(0.5)
standin = subprocess.Popen([standin_bin, "-dir", f"{work}/device-plugins"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

def cmd(line):
    standin.stdin.write(line + "\n")
    standin.stdin.flush()
    answer = json.loads(standin.stdout.readline())
    if "error" in answer:
        sys.exit(f"device-plugin bench: {line}: {answer['error']}")
    return answer

assert json.loads(standin.stdout.readline())["ready"]
cmd("wait-registered amd.com/gpu 10000")

def proc(pid):
    """CPU ticks (all threads), context switches (summed over threads), VmRSS, VmHWM (KiB)."""
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])  # utime + stime of the whole process
    switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        t = dict(l.split(":", 1) for l in open(f"/proc/{pid}/task/{task}/status"))
        switches += int(t["voluntary_ctxt_switches"]) + int(t["nonvoluntary_ctxt_switches"])
    kib = lambda key: int(status[key].split()[0])
    return ticks, switches, kib("VmRSS"), kib("VmHWM")

one = cmd(f"bench-allocate amd.com/gpu {rounds} 0000:05:00.0-p0")
eight = cmd(f"bench-allocate amd.com/gpu {rounds} " +
            ",".join(f"0000:05:00.0-p{k}" for k in range(8)))
_, _, rss, hwm = proc(plugin.pid)

time.sleep(1)
ticks0, switches0, _, _ = proc(plugin.pid)
time.sleep(idle)
ticks1, switches1, rss_idle, _ = proc(plugin.pid)
threads = len(os.listdir(f"/proc/{plugin.pid}/task"))
hz = os.sysconf("SC_CLK_TCK")

import re
spec_names = {}
text = open(f"{work}/cdi/amd.com-gpu.yaml").read()
for name, path in re.findall(r"- name: '([^']+)'\n  containerEdits:\n    deviceNodes:\n    - path: '([^']+)'", text):
    spec_names[name] = path
node = work + spec_names["0000:05:00.0-p0"]
down, up = [], []
for _ in range(20):
    stat = os.stat(node)
    start = time.time_ns()
    os.remove(node)
    down.append((cmd("wait-health amd.com/gpu 0000:05:00.0-p0 Unhealthy 5000")["at"] - start) / 1e6)
    start = time.time_ns()
    os.mknod(node, stat.st_mode, stat.st_rdev)
    up.append((cmd("wait-health amd.com/gpu 0000:05:00.0-p0 Healthy 5000")["at"] - start) / 1e6)
    time.sleep(0.2)

cmd("quit")
plugin.terminate()
plugin.wait(10)

print(f"plugin {plugin_bin}, host examples/hosts/mi300x-cpx (64 partitions, amd.com/gpu), "
      f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}\n")
print("| measure | p50 | p99 |")
print("|---|---:|---:|")
print(f"| Allocate, 1 device ({one['n']} calls) | {one['p50_us']/1000:.2f} ms | {one['p99_us']/1000:.2f} ms |")
print(f"| Allocate, 8 devices ({eight['n']} calls) | {eight['p50_us']/1000:.2f} ms | {eight['p99_us']/1000:.2f} ms |")
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print(f"| render node removed -> Unhealthy at the stand-in (20 rounds) | {statistics.median(down):.0f} ms | max {max(down):.0f} ms |")
print(f"| render node back -> Healthy at the stand-in (20 rounds) | {statistics.median(up):.0f} ms | max {max(up):.0f} ms |")
print()
print("| measure | value |")
print("|---|---:|")
print(f"| resident memory after the Allocate runs (VmRSS) | {rss/1024:.1f} MiB |")
print(f"| peak resident memory (VmHWM) | {hwm/1024:.1f} MiB |")
print(f"| resident memory after the idle period | {rss_idle/1024:.1f} MiB |")
print(f"| CPU time over {idle} idle seconds | {(ticks1 - ticks0) * 1000 / hz:.0f} ms |")
print(f"| context switches over {idle} idle seconds, all {threads} threads | {switches1 - switches0} |")
PY
