#!/usr/bin/env python3
"""Writes the example sysfs trees in examples/hosts/<name>/sys (and the broken variants the tests
use in tests/fixtures/hosts/<name>/sys).

Each tree holds what amdgpu-cdi reads on a real host, laid out as the kernel lays it out
(class and bus directories are symlinks into /sys/devices), plus a few realistic neighbours.
The DRM minors are handed out the way the kernel does it: per DRM device the render minor first
(legacy range 128..191), then the card minor (0..63); with extended minors (Linux 6.8+) both
overflow into one shared range from 192. Without extended minors an amdgpu partition device that
finds no free minor is skipped, and KFD then does not list that partition.

Run from anywhere; output is deterministic:  python3 examples/hosts/make-hosts.py
`--out DIR` writes DIR/examples/hosts/... and DIR/tests/fixtures/hosts/... instead of the
repository (the test suite uses it to check that the committed trees are up to date).
Only the Python 3 standard library is used.
"""

import hashlib
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AMD = 0x1002


def digest(*parts):
    """A stable 64-bit number derived from `parts`."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


class NoSpace(Exception):
    """The DRM minor range is exhausted (ENOSPC)."""


class Minors:
    """DRM minor allocation: legacy ranges per type, then an optional shared extended range."""

    def __init__(self, extended):
        self.extended = extended
        self.free = {"card": list(range(0, 64)), "render": list(range(128, 192))}
        self.next_extended = 192

    def alloc(self, kind):
        if self.free[kind]:
            return self.free[kind].pop(0)
        if not self.extended:
            raise NoSpace()
        minor = self.next_extended
        self.next_extended += 1
        return minor

    def device(self, render=True):
        """One DRM device: (render minor or None, card minor)."""
        render_minor = self.alloc("render") if render else None
        return render_minor, self.alloc("card")


class Tree:
    """Files and symlinks of one sysfs tree, paths relative to its `sys` directory."""

    def __init__(self):
        self.entries = {}
        self.outside = {}

    def root_file(self, path, content):
        """A file beside `sys` (a WSL host's `proc/version`, `usr/lib/wsl/...`)."""
        self.outside[path] = str(content)

    def file(self, path, content):
        content = str(content)
        self.entries[path] = ("file", content if content.endswith("\n") else content + "\n")

    def link(self, path, target):
        self.entries[path] = ("link", target)

    def write(self, root):
        if os.path.lexists(root):
            shutil.rmtree(root)
        sysdir = os.path.join(root, "sys")
        for path in sorted(self.entries):
            kind, value = self.entries[path]
            full = os.path.join(sysdir, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if kind == "file":
                with open(full, "w", encoding="utf-8", newline="\n") as f:
                    f.write(value)
            else:
                target = os.path.relpath(os.path.join(sysdir, value), os.path.dirname(full))
                if target.split("/")[-1] == "..":
                    # The kernel spells a link to an ancestor through the ancestor's parent:
                    # `device -> ../../../0000:03:00.0`, not `../..`.
                    target = f"{target}/../{os.path.basename(value)}"
                os.symlink(target, full)
        for path in sorted(self.outside):
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8", newline="\n") as f:
                f.write(self.outside[path])


class Host:
    """A host under construction."""

    def __init__(self, extended_minors=True, kfd=True):
        self.tree = Tree()
        self.minors = Minors(extended_minors)
        self.kfd_nodes = []
        self.tree.file("class/drm/version", "drm 1.1.0 20060810")
        if kfd:
            base = "devices/virtual/kfd/kfd"
            self.tree.link("class/kfd/kfd", base)
            self.tree.file(f"{base}/dev", "511:0")
            self.tree.file(f"{base}/uevent", "MAJOR=511\nMINOR=0\nDEVNAME=kfd")
            self.tree.file(f"{base}/topology/generation_id", "1")
            self.tree.file(f"{base}/topology/system_properties", "platform_oem 0\nplatform_id 0\nplatform_rev 0")

    # PCI -----------------------------------------------------------------------------------
    def pci_device(self, bdf, vendor, device, pci_class, driver, numa, attrs=None):
        domain, bus = bdf[:4], int(bdf[5:7], 16)
        root_port = f"{domain}:{max(bus - 1, 0):02x}:01.1"
        path = f"devices/pci{domain}:00/{root_port}/{bdf}"
        t = self.tree
        t.file(f"{path}/vendor", f"0x{vendor:04x}")
        t.file(f"{path}/device", f"0x{device:04x}")
        t.file(f"{path}/class", f"0x{pci_class:06x}")
        t.file(f"{path}/numa_node", numa)
        t.file(f"{path}/revision", "0x00")
        t.link(f"{path}/subsystem", "bus/pci")
        t.link(f"bus/pci/devices/{bdf}", path)
        if driver:
            t.link(f"{path}/driver", f"bus/pci/drivers/{driver}")
            t.link(f"bus/pci/drivers/{driver}/{bdf}", path)
        for name, value in (attrs or {}).items():
            t.file(f"{path}/{name}", value)
        return path

    def drm(self, parent, render_minor, card_minor):
        """The DRM class entries of one DRM device under `parent` (a /sys/devices path)."""
        t = self.tree
        for name, minor in ((f"renderD{render_minor}", render_minor), (f"card{card_minor}", card_minor)):
            if minor is None:
                continue
            d = f"{parent}/drm/{name}"
            t.file(f"{d}/dev", f"226:{minor}")
            t.file(f"{d}/uevent", f"MAJOR=226\nMINOR={minor}\nDEVNAME=dri/{name}\nDEVTYPE=drm_minor")
            t.link(f"{d}/device", parent)
            t.link(f"class/drm/{name}", d)

    def xcp_device(self, name):
        path = f"devices/platform/{name}"
        self.tree.file(f"{path}/modalias", f"platform:{name.split('.')[0]}")
        self.tree.link(f"{path}/subsystem", "bus/platform")
        self.tree.link(f"bus/platform/devices/{name}", path)
        return path

    # KFD -----------------------------------------------------------------------------------
    def cpu_node(self, cores, simd_base=0):
        self.kfd_nodes.append(({"cpu_cores_count": cores, "simd_count": 0, "mem_banks_count": 1,
                                "caches_count": 0, "io_links_count": 0, "cpu_core_id_base": simd_base,
                                "simd_id_base": 0, "max_waves_per_simd": 0, "lds_size_in_kb": 0,
                                "gds_size_in_kb": 0, "wave_front_size": 0, "array_count": 0,
                                "simd_arrays_per_engine": 0, "cu_per_simd_array": 0,
                                "simd_per_cu": 0, "max_slots_scratch_cu": 0,
                                "gfx_target_version": 0, "vendor_id": 0, "device_id": 0,
                                "location_id": 0, "domain": 0, "drm_render_minor": 0,
                                "hive_id": 0, "num_sdma_engines": 0, "num_sdma_xgmi_engines": 0,
                                "num_sdma_queues_per_engine": 0, "num_cp_queues": 0,
                                "max_engine_clk_fcompute": 0, "local_mem_size": 0,
                                "fw_version": 0, "capability": 0, "debug_prop": 0,
                                "sdma_fw_version": 0, "unique_id": 0, "num_xcc": 0,
                                "max_engine_clk_ccompute": 3700}, 0, ""))

    def gpu_node(self, bdf, device_id, render_minor, simd, gfx, unique_id, partition=0,
                 old_kernel=False, cpu_cores=0, local_mem=0, name="", hive=0):
        domain, bus, dev, fn = int(bdf[:4], 16), int(bdf[5:7], 16), int(bdf[8:10], 16), int(bdf[11])
        location = (bus << 8) | (dev << 3) | (fn | partition)
        props = {"cpu_cores_count": cpu_cores, "simd_count": simd, "mem_banks_count": 1,
                 "caches_count": 160, "io_links_count": 1, "cpu_core_id_base": 0,
                 "simd_id_base": 2147487744 + 2 * len(self.kfd_nodes), "max_waves_per_simd": 8,
                 "lds_size_in_kb": 64, "gds_size_in_kb": 0, "wave_front_size": 64,
                 "array_count": 4, "simd_arrays_per_engine": 1, "cu_per_simd_array": simd // 16,
                 "simd_per_cu": 4, "max_slots_scratch_cu": 32, "gfx_target_version": gfx,
                 "vendor_id": AMD, "device_id": device_id, "location_id": location,
                 "domain": domain, "drm_render_minor": render_minor, "hive_id": hive,
                 "num_sdma_engines": 2, "num_sdma_xgmi_engines": 0,
                 "num_sdma_queues_per_engine": 8, "num_cp_queues": 24,
                 "max_engine_clk_fcompute": 2100, "local_mem_size": local_mem,
                 "fw_version": 177, "capability": 746324608, "debug_prop": 1495,
                 "sdma_fw_version": 24, "unique_id": unique_id, "num_xcc": 1,
                 "max_engine_clk_ccompute": 3700}
        if old_kernel:
            # Linux 5.4-era KFD: no domain, gfx_target_version, unique_id or num_xcc.
            for key in ("domain", "gfx_target_version", "unique_id", "num_xcc", "debug_prop",
                        "sdma_fw_version", "num_sdma_xgmi_engines"):
                del props[key]
        gpu_id = 1024 + digest(bdf, partition) % 64000
        self.kfd_nodes.append((props, gpu_id, name))

    def write(self, root):
        base = "devices/virtual/kfd/kfd/topology/nodes"
        for number, (props, gpu_id, name) in enumerate(self.kfd_nodes):
            text = "".join(f"{k} {v}\n" for k, v in props.items())
            self.tree.file(f"{base}/{number}/properties", text)
            self.tree.file(f"{base}/{number}/gpu_id", gpu_id)
            self.tree.file(f"{base}/{number}/name", name)
        self.tree.write(root)


def instinct_attrs(product, compute=None, memory=None, available=None):
    attrs = {"product_name": product}
    if compute:
        attrs["current_compute_partition"] = compute
        attrs["available_compute_partition"] = available
        attrs["current_memory_partition"] = memory
    return attrs


def simple_gpu(host, bdf, device_id, gfx, simd, numa, product=None, unique=True, pci_class=0x030000,
               old_kernel=False, name="", cpu_cores=0, hive=0):
    """A whole GPU with one DRM device on its PCI function; returns a function adding its KFD
    node. `hive` is the KFD `hive_id` of GPUs linked by XGMI (0: none)."""
    render, card = host.minors.device()
    attrs = {"product_name": product} if product else {}
    path = host.pci_device(bdf, AMD, device_id, pci_class, "amdgpu", numa, attrs)
    host.drm(path, render, card)
    unique_id = digest("unique", bdf) if unique else 0
    return lambda: host.gpu_node(bdf, device_id, render, simd, gfx, unique_id,
                                 old_kernel=old_kernel, cpu_cores=cpu_cores, name=name, hive=hive)


def workstation():
    """Ryzen 9 7950X (Raphael iGPU) with a Radeon RX 7900 XTX."""
    h = Host()
    h.cpu_node(32)
    dgpu = simple_gpu(h, "0000:03:00.0", 0x744C, 110000, 192, -1, name="gfx1100")
    h.pci_device("0000:03:00.1", AMD, 0xAB30, 0x040300, "snd_hda_intel", -1)
    igpu = simple_gpu(h, "0000:11:00.0", 0x164E, 100306, 8, -1, unique=False, name="gfx1036")
    h.pci_device("0000:11:00.1", AMD, 0x1640, 0x040300, "snd_hda_intel", -1)
    dgpu()
    igpu()
    return h


def mi210x4():
    """Dual-socket EPYC with 4x MI210; probe (KFD and DRM) order differs from PCI order. Two
    2-way Infinity Fabric Link bridges join the cards of each socket into an XGMI hive."""
    h = Host()
    h.cpu_node(64)
    h.cpu_node(64, 64)
    pending = {}
    for bdf, numa in (("0000:43:00.0", 1), ("0000:03:00.0", 0), ("0000:63:00.0", 1), ("0000:23:00.0", 0)):
        pending[bdf] = simple_gpu(h, bdf, 0x740F, 90010, 416, numa, "AMD Instinct MI210",
                                  pci_class=0x038000, name="gfx90a", hive=digest("hive", "mi210x4", numa))
    for add in pending.values():
        add()
    return h


MI300X_BDFS = ["0000:05:00.0", "0000:15:00.0", "0000:65:00.0", "0000:75:00.0",
               "0000:85:00.0", "0000:95:00.0", "0000:e5:00.0", "0000:f5:00.0"]
MI300X = 0x74A1
MI300X_PRODUCT = "AMD Instinct MI300X OAM"


def bmc(host):
    """The ASPEED BMC's display: a card node, no render node."""
    _, card = host.minors.device(render=False)
    path = host.pci_device("0000:c2:00.0", 0x1A03, 0x2000, 0x030000, "ast", 0)
    host.drm(path, None, card)


def mi300x_cpx():
    """8x MI300X in CPX, Linux 6.8+ with extended DRM minors, `amdgpu_xcp_<k>` devices, and an
    amdgpu that gives every partition its own xcp device (9 DRM devices per GPU): the primary
    render nodes are placeholders and minors run past 191. The eight OAM modules form one XGMI
    hive."""
    h = Host(extended_minors=True)
    h.cpu_node(96)
    h.cpu_node(96, 96)
    bmc(h)
    xcp = 0
    for g, bdf in enumerate(MI300X_BDFS):
        numa = 0 if g < 4 else 1
        render, card = h.minors.device()
        path = h.pci_device(bdf, AMD, MI300X, 0x120000, "amdgpu", numa,
                            instinct_attrs(MI300X_PRODUCT, "CPX", "NPS1", "SPX, DPX, QPX, CPX"))
        h.drm(path, render, card)
        shared_id = digest("unique", bdf)
        for k in range(8):
            render, card = h.minors.device()
            dev = h.xcp_device(f"amdgpu_xcp_{xcp}")
            xcp += 1
            h.drm(dev, render, card)
            h.gpu_node(bdf, MI300X, render, 152, 90402, shared_id, partition=k, name="gfx942",
                       hive=digest("hive", "mi300x-cpx"))
    return h


def mi300x_cpx_dot():
    """8x MI300X in CPX in a VM (virtio-gpu console), an older kernel without extended DRM minors
    and `amdgpu_xcp.<k>` devices; partition 0 shares the GPU's own DRM device. The virtio GPU
    holds renderD128, so the last partition finds no render minor: amdgpu skips it and KFD lists
    63 partitions."""
    h = Host(extended_minors=False)
    h.cpu_node(96)
    render, card = h.minors.device()
    virtio = h.pci_device("0000:00:02.0", 0x1AF4, 0x1050, 0x030000, "virtio-pci", -1)
    h.tree.file(f"{virtio}/virtio0/device", "0x0010")
    h.drm(f"{virtio}/virtio0", render, card)
    xcp = 0
    for g in range(8):
        bdf = f"0000:{0x11 + g:02x}:00.0"
        render, card = h.minors.device()
        path = h.pci_device(bdf, AMD, MI300X, 0x120000, "amdgpu", 0,
                            instinct_attrs(MI300X_PRODUCT, "CPX", "NPS1", "SPX, DPX, QPX, CPX"))
        h.drm(path, render, card)
        h.gpu_node(bdf, MI300X, render, 152, 90402, digest("unique", bdf, 0), partition=0, name="gfx942")
        for k in range(1, 8):
            try:
                render, card = h.minors.device()
            except NoSpace:
                continue
            dev = h.xcp_device(f"amdgpu_xcp.{xcp}")
            xcp += 1
            h.drm(dev, render, card)
            h.gpu_node(bdf, MI300X, render, 152, 90402, digest("unique", bdf, k), partition=k, name="gfx942")
    return h


def xcp_gpu(h, bdf, device_id, product, mode, memory, available, partitions, simd, numa, first_xcp, shared=True,
            hive=0):
    """A partition-capable GPU on a current kernel: partition 0 on the GPU's own DRM device,
    partitions 1.. on `amdgpu_xcp_<k>`, 7 xcp devices in every mode (the rest placeholders)."""
    render, card = h.minors.device()
    path = h.pci_device(bdf, AMD, device_id, 0x120000, "amdgpu", numa,
                        instinct_attrs(product, mode, memory, available))
    h.drm(path, render, card)
    renders = [render]
    for j in range(7):
        r, c = h.minors.device()
        h.drm(h.xcp_device(f"amdgpu_xcp_{first_xcp + j}"), r, c)
        renders.append(r)
    for k in range(partitions):
        uid = digest("unique", bdf) if shared else digest("unique", bdf, k)
        h.gpu_node(bdf, device_id, renders[k], simd, 90402, uid, partition=k, name="gfx942", hive=hive)


def mi300x_spx():
    """8x MI300X in SPX on a current kernel: one KFD node per GPU on its own render node, and 7
    placeholder `amdgpu_xcp_<k>` render nodes per GPU that KFD does not list."""
    h = Host(extended_minors=True)
    h.cpu_node(96)
    h.cpu_node(96, 96)
    bmc(h)
    for g, bdf in enumerate(MI300X_BDFS):
        xcp_gpu(h, bdf, MI300X, MI300X_PRODUCT, "SPX", "NPS1", "SPX, DPX, QPX, CPX", 1, 1216,
                0 if g < 4 else 1, 7 * g)
    return h


def mi300a_tpx():
    """4x MI300A APUs in TPX (3 partitions each), one PCI domain per socket."""
    h = Host(extended_minors=True)
    for s in range(4):
        h.cpu_node(24, 24 * s)
    for s in range(4):
        xcp_gpu(h, f"000{s}:02:00.0", 0x74A0, "AMD Instinct MI300A", "TPX", "NPS1",
                "SPX, TPX, CPX", 3, 304, s, 7 * s, shared=False)
    return h


MI308X = 0x74A2


def mi308x_two_domains():
    """8x MI308X (four 20-CU XCDs each) in CPX, 4 partitions per GPU, on a server whose two
    sockets each own a PCI domain: GPUs 0-3 in domain 0000 (NUMA node 0), GPUs 4-7 in domain 0001
    (NUMA node 1), on the same bus numbers in both domains. The eight modules form one XGMI
    hive."""
    h = Host(extended_minors=True)
    h.cpu_node(96)
    h.cpu_node(96, 96)
    bmc(h)
    hive = digest("hive", "mi308x-two-domains")
    first_xcp = 0
    for domain in (0, 1):
        for bus in (0x05, 0x15, 0x65, 0x75):
            xcp_gpu(h, f"{domain:04x}:{bus:02x}:00.0", MI308X, "AMD Instinct MI308X", "CPX", "NPS1",
                    "SPX, DPX, CPX", 4, 80, domain, first_xcp, hive=hive)
            first_xcp += 7
    return h


def old_kernel():
    """2x MI50 on a Linux 5.4-era kernel: KFD has no `domain`, the GPUs sit in two PCI domains on
    the same bus number, so only the render node's PCI parent tells them apart."""
    h = Host(extended_minors=False)
    h.cpu_node(32)
    first = simple_gpu(h, "0000:03:00.0", 0x66A1, 0, 240, 0, unique=False, pci_class=0x038000,
                       old_kernel=True, name="vega20")
    second = simple_gpu(h, "0001:03:00.0", 0x66A1, 0, 240, 0, unique=False, pci_class=0x038000,
                        old_kernel=True, name="vega20")
    first()
    second()
    return h


def nvidia_mixed():
    """An NVIDIA RTX 4090 (probed first: card0, renderD128) beside a Radeon PRO W7900."""
    h = Host()
    h.cpu_node(24)
    render, card = h.minors.device()
    path = h.pci_device("0000:01:00.0", 0x10DE, 0x2684, 0x030000, "nvidia", -1)
    h.drm(path, render, card)
    h.pci_device("0000:01:00.1", 0x10DE, 0x22BA, 0x040300, "snd_hda_intel", -1)
    simple_gpu(h, "0000:41:00.0", 0x7448, 110000, 192, -1, name="gfx1100")()
    return h


def multi_domain():
    """3x MI210 in three PCI domains, KFD order 0002, 0000, 0001; a 2-way Infinity Fabric Link
    bridge joins 0002:81:00.0 and 0000:c1:00.0 into an XGMI hive, 0001:41:00.0 has none."""
    h = Host()
    h.cpu_node(64)
    hive = digest("hive", "multi-domain")
    order = [("0002:81:00.0", 0, hive), ("0000:c1:00.0", 0, hive), ("0001:41:00.0", 0, 0)]
    for add in [simple_gpu(h, bdf, 0x740F, 90010, 416, numa, "AMD Instinct MI210",
                           pci_class=0x038000, name="gfx90a", hive=hive)
                for bdf, numa, hive in order]:
        add()
    return h


def no_amd():
    """A host with only an NVIDIA GPU: no KFD."""
    h = Host(kfd=False)
    render, card = h.minors.device()
    h.drm(h.pci_device("0000:01:00.0", 0x10DE, 0x2684, 0x030000, "nvidia", -1), render, card)
    return h


VGPU_CLASS_ID = "{6e382d18-3336-4f4b-acc4-2b7703d4df4a}"


def wsl2():
    """A WSL2 distribution on a Windows machine with one Radeon RX 7900 XTX: no KFD, no PCI GPU, no
    render node; dxgkrnl's misc device `dxg` and one virtual GPU channel on VMBus, beside the
    network and storage channels every WSL2 VM has. `proc/version` and the DXCore library (an
    empty stand-in) sit beside `sys` for `--proc-root` and `--wsl-lib-root`."""
    h = Host(kfd=False)
    t = h.tree
    t.link("class/misc/dxg", "devices/virtual/misc/dxg")
    t.file("devices/virtual/misc/dxg/dev", "10:124")
    t.file("devices/virtual/misc/dxg/uevent", "MAJOR=10\nMINOR=124\nDEVNAME=dxg")
    vmbus = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00"
    for guid, class_id in [
        ("4b8b41b1-9bbd-4a4f-a1d5-34d2c0e8b4f6", VGPU_CLASS_ID),
        ("8f0ce6ad-b3c8-4e42-9df1-3c53e8b2a2f1", "{f8615163-df3e-46c5-913f-f2d2f965ed0e}"),
        ("e95fb5a2-5cd9-4b7a-9d35-ac4f5ea7ef19", "{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}"),
    ]:
        t.file(f"{vmbus}/{guid}/class_id", class_id)
        t.file(f"{vmbus}/{guid}/device_id", "{" + guid + "}")
        t.link(f"bus/vmbus/devices/{guid}", f"{vmbus}/{guid}")
    t.root_file("proc/version", "Linux version 6.6.87.2-microsoft-standard-WSL2 (root@439a258ad544) "
                "(gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP PREEMPT_DYNAMIC Thu Jun  5 18:30:46 UTC 2025\n")
    t.root_file("usr/lib/wsl/lib/libdxcore.so", "")
    return h


# Broken variants for error tests --------------------------------------------------------------
def garbage_properties():
    h = workstation()
    props, gpu_id, name = h.kfd_nodes[1]
    h.kfd_nodes[1] = ({"simd_count": 192, "vendor_id": "0x1002"}, gpu_id, name)
    return h


def missing_render():
    h = workstation()
    h.kfd_nodes[2][0]["drm_render_minor"] = 140
    return h


def no_driver():
    """An MI210 on the PCI bus with no driver bound: no KFD, no DRM nodes."""
    h = Host(kfd=False)
    h.pci_device("0000:03:00.0", AMD, 0x740F, 0x038000, None, 0, {"product_name": "AMD Instinct MI210"})
    return h


def no_gpu_nodes():
    h = Host()
    h.cpu_node(16)
    return h


EXAMPLES = {
    "workstation": workstation,
    "mi210x4": mi210x4,
    "mi300x-cpx": mi300x_cpx,
    "mi300x-cpx-dot": mi300x_cpx_dot,
    "mi300x-spx": mi300x_spx,
    "mi300a-tpx": mi300a_tpx,
    "mi308x-two-domains": mi308x_two_domains,
    "old-kernel": old_kernel,
    "nvidia-mixed": nvidia_mixed,
    "multi-domain": multi_domain,
    "no-amd": no_amd,
    "wsl2": wsl2,
}

FIXTURES = {
    "garbage-properties": garbage_properties,
    "missing-render": missing_render,
    "no-gpu-nodes": no_gpu_nodes,
    "no-driver": no_driver,
}


def main(argv):
    out = REPO
    if len(argv) == 3 and argv[1] == "--out":
        out = argv[2]
    elif len(argv) != 1:
        print("usage: make-hosts.py [--out DIR]", file=sys.stderr)
        return 2
    for name, build in EXAMPLES.items():
        build().write(os.path.join(out, "examples", "hosts", name))
    for name, build in FIXTURES.items():
        build().write(os.path.join(out, "tests", "fixtures", "hosts", name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
