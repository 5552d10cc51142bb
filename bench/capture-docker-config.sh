#!/usr/bin/env bash
# Captures the OCI config.json that Docker writes for a `docker run` with its defaults, the bundle
# `amdgpu-container-runtime` gets from Docker/containerd users, and turns it into the fixture
# tests/fixtures/oci/docker-20.10-config.json that bench/hooks.sh runs with plain runc and with the
# wrapper. tests/fixtures/oci/README.md says what is kept and what is changed, and why.
#
# How: a private dockerd (its own data root, exec root, pidfile, socket and empty daemon.json
# under a temporary directory; no iptables, no default bridge, the vfs storage driver) imports a
# busybox-static rootfs as an image and runs `docker run -d --network none IMAGE sleep 300`; the
# config.json of that container's bundle is copied from the containerd task directory under the
# exec root, then the container, the image and the daemon are removed with everything they left
# (mounts under the temporary directory, the daemon's /docker cgroups where it created them). The raw capture is kept in target/docker-capture/ (not
# committed: it names the container and the temporary paths).
#
# Sanitised so that `runc run` runs it standalone in any bundle directory that holds `rootfs/` (a
# busybox rootfs) and the files named below; everything that costs runc work is kept as Docker
# wrote it (seccomp profile, capabilities, masked and read-only paths, mounts and their options,
# namespaces, device cgroup rules, sysctls, the cgroupsPath form; Docker sets no rlimits unless
# the daemon has default ulimits):
#  - root.path: `rootfs` (Docker: the storage driver's directory of this container);
#  - hostname and the HOSTNAME variable: `docker-bench` (Docker: the container id's first 12
#    hex digits);
#  - process.args: `/bin/true` (captured: `sleep 300`);
#  - the bind mounts of /etc/resolv.conf, /etc/hostname and /etc/hosts: from
#    `container/resolv.conf`, `container/hostname` and `container/hosts`, relative to the bundle
#    (runc resolves a relative bind source against the bundle directory), instead of the files
#    Docker keeps in <data root>/containers/<id>/;
#  - linux.cgroupsPath: `/docker/` and 64 zeros (Docker: `/docker/<container id>`, the same form);
#    bench/hooks.sh puts a new id in it on each of its runs;
#  - hooks: removed (Docker: one prestart hook, `/proc/<dockerd pid>/exe libnetwork-setkey ...`,
#    which hands the new network namespace to the daemon's libnetwork; it cannot run without that
#    daemon). The network namespace stays a new one, as Docker 20.10 asks runc for; a `path` to an
#    existing one, as other versions may write, would be removed;
#  - process.apparmorProfile, process.selinuxLabel and linux.mountLabel, if the host had them:
#    removed (they name the host's security profiles).
# Anything else that names the container id or the capture's temporary directory makes the script
# fail, so a new Docker version's new field is seen rather than committed.
#
# Needs root, dockerd (Debian's docker.io, 20.10 for the default output), the docker CLI, python3
# and busybox-static. Usage: sudo bench/capture-docker-config.sh [OUTPUT]
# (default: tests/fixtures/oci/docker-20.10-config.json, which needs dockerd 20.10.x).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/capture-docker-config.sh: needs root" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/tests/fixtures/oci/docker-20.10-config.json}
raw_dir=$repo/target/docker-capture
for tool in dockerd docker python3; do
    command -v "$tool" >/dev/null ||
        { echo "bench/capture-docker-config.sh: $tool not found in PATH" >&2; exit 1; }
done
[ -x /bin/busybox ] ||
    { echo "bench/capture-docker-config.sh: /bin/busybox not found (busybox-static)" >&2; exit 1; }
daemon_version=$(dockerd --version)
if [ $# -eq 0 ] && [[ $daemon_version != *" 20.10."* ]]; then
    echo "bench/capture-docker-config.sh: the default output is Docker 20.10's config, but" \
        "this is '$daemon_version'; name another output file" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/amdgpu-cdi-capture.XXXXXX)
docker=(docker -H "unix://$tmp/docker.sock")
# The daemon's cgroup parent (/docker) in every hierarchy, and whether it was there before.
cgroup_dirs=()
for dir in /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
    parent=${dir%/docker}
    [ -d "$parent" ] && [ ! -e "$dir" ] && cgroup_dirs+=("$dir")
done
cleanup() {
    set +e
    if [ -s "$tmp/docker.pid" ]; then
        local pid
        pid=$(cat "$tmp/docker.pid")
        "${docker[@]}" rm -f amdgpu-cdi-capture >/dev/null 2>&1
        kill "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    # Whatever the daemon left mounted under the temporary directory, deepest first.
    findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r target; do
        umount -l "$target"
    done
    for dir in "${cgroup_dirs[@]}"; do
        [ -d "$dir" ] && rmdir "$dir" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# The image: busybox-static as /bin/busybox with the applets the container uses.
rootfs=$tmp/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh sleep true; do ln -s busybox "$rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

echo '{}' >"$tmp/daemon.json"
echo "starting $daemon_version in $tmp" >&2
dockerd --config-file "$tmp/daemon.json" --data-root "$tmp/root" --exec-root "$tmp/exec" \
    --pidfile "$tmp/docker.pid" -H "unix://$tmp/docker.sock" \
    --iptables=false --bridge=none --storage-driver=vfs >"$tmp/dockerd.log" 2>&1 &
for _ in $(seq 300); do
    "${docker[@]}" version >/dev/null 2>&1 && break
    sleep 0.2
done
"${docker[@]}" version >/dev/null ||
    { echo "bench/capture-docker-config.sh: dockerd did not start; its log:" >&2
      cat "$tmp/dockerd.log" >&2; exit 1; }

tar -C "$rootfs" -c . | "${docker[@]}" import - amdgpu-cdi-capture-busybox >/dev/null
id=$("${docker[@]}" run -d --name amdgpu-cdi-capture --network none \
    amdgpu-cdi-capture-busybox sleep 300)
config=$(find "$tmp/exec" -path "*/io.containerd.runtime.v2.task/moby/$id/config.json" | head -n 1)
[ -n "$config" ] ||
    { echo "bench/capture-docker-config.sh: no config.json of container $id under $tmp/exec" >&2
      exit 1; }
mkdir -p "$raw_dir"
cp "$config" "$raw_dir/raw-config.json"
echo "$daemon_version" >"$raw_dir/version.txt"
echo "captured $config ($(wc -c <"$config") bytes), raw copy in $raw_dir/raw-config.json" >&2

python3 - "$raw_dir/raw-config.json" "$out" "$id" "$tmp" <<'PY'
import json, sys

raw_path, out_path, cid, tmp = sys.argv[1:]
config = json.load(open(raw_path))

def fail(message):
    sys.exit(f"bench/capture-docker-config.sh: {message}")

config["root"]["path"] = "rootfs"
if config.get("hostname") != cid[:12]:
    fail(f"hostname {config.get('hostname')!r} is not the container id's first 12 digits")
config["hostname"] = "docker-bench"
process = config["process"]
process["args"] = ["/bin/true"]
process["env"] = ["HOSTNAME=docker-bench" if e.startswith("HOSTNAME=") else e
                  for e in process["env"]]
for key in ("apparmorProfile", "selinuxLabel"):
    process.pop(key, None)
config["linux"].pop("mountLabel", None)

# The files Docker keeps per container, bind-mounted into it.
sources = {"/etc/resolv.conf": "container/resolv.conf", "/etc/hostname": "container/hostname",
           "/etc/hosts": "container/hosts"}
for mount in config["mounts"]:
    if mount["destination"] in sources:
        if cid not in mount["source"]:
            fail(f"the mount of {mount['destination']} is not from the container's directory")
        mount["source"] = sources.pop(mount["destination"])
if sources:
    fail(f"no mount of {', '.join(sources)} in the capture")

linux = config["linux"]
if linux.get("cgroupsPath") != f"/docker/{cid}":
    fail(f"cgroupsPath {linux.get('cgroupsPath')!r} is not /docker/<container id>")
linux["cgroupsPath"] = "/docker/" + "0" * 64
network = [ns for ns in linux["namespaces"] if ns["type"] == "network"]
if len(network) != 1:
    fail("no network namespace in the capture")
network[0].pop("path", None)

hooks = config.pop("hooks", {})
if (list(hooks) != ["prestart"] or len(hooks["prestart"]) != 1
        or hooks["prestart"][0].get("args", [""])[0] != "libnetwork-setkey"):
    fail(f"hooks other than Docker's libnetwork-setkey prestart hook: {json.dumps(hooks)}")

text = json.dumps(config, separators=(",", ":"))
for left in (cid, cid[:12], tmp, "/var/lib/docker", "/var/run/docker", "/run/docker"):
    if left in text:
        fail(f"the sanitised config still names {left!r}")
# Docker writes one line of compact JSON; so does the fixture (plus a final newline).
with open(out_path, "w") as out:
    out.write(text + "\n")
print(f"wrote {out_path} ({len(text) + 1} bytes)", file=sys.stderr)
PY
