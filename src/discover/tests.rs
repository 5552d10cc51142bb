//! Unit tests of discovery helpers; whole-host behaviour is tested against `examples/hosts`.

use std::io;
use std::path::{Path, PathBuf};

use super::drm::is_xcp_device;
use super::error::describe_io;
use super::products::known_product;
use super::*;

#[test]
fn pci_address_round_trips() {
    let address: PciAddress = "0001:c1:1f.7".parse().expect("valid address");
    assert_eq!(
        address,
        PciAddress {
            domain: 1,
            bus: 0xc1,
            device: 0x1f,
            function: 7
        }
    );
    assert_eq!(address.to_string(), "0001:c1:1f.7");
    for bad in [
        "",
        "03:00.0",
        "0000:03:00",
        "0000:03:20.0",
        "0000:03:00.8",
        "0000:x3:00.0",
    ] {
        assert!(bad.parse::<PciAddress>().is_err(), "{bad} parsed");
    }
}

#[test]
fn xcp_device_names_in_both_spellings() {
    assert!(is_xcp_device("amdgpu_xcp_12"));
    assert!(is_xcp_device("amdgpu_xcp.3"));
    assert!(!is_xcp_device("amdgpu_xcp"));
    assert!(!is_xcp_device("amdgpu_xcp_"));
    assert!(!is_xcp_device("amdgpu_xcpx1"));
    assert!(!is_xcp_device("0000:03:00.0"));
}

#[test]
fn io_errors_read_lower_case_with_a_hint_for_eperm() {
    let eperm = io::Error::from_raw_os_error(nix::libc::EPERM);
    assert_eq!(
        describe_io(&eperm),
        "operation not permitted (is this running inside a restricted container?)"
    );
    let enoent = io::Error::from_raw_os_error(nix::libc::ENOENT);
    assert_eq!(describe_io(&enoent), "no such file or directory");
}

fn example(host: &str) -> DiscoverOptions {
    DiscoverOptions {
        sysfs_root: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/hosts")
            .join(host)
            .join("sys"),
        dev_root: PathBuf::from("/nonexistent/amdgpu-cdi-test-dev"),
    }
}

fn run(host: &str) -> Discovery {
    discover_with(&example(host), &RealSysfs).expect("example host discovers")
}

fn addresses(host: &Host) -> Vec<String> {
    host.gpus
        .iter()
        .map(|g| g.pci_address.to_string())
        .collect()
}

#[test]
fn order_is_pci_order_not_kfd_order() {
    let d = run("mi210x4");
    assert_eq!(
        addresses(&d.host),
        [
            "0000:03:00.0",
            "0000:23:00.0",
            "0000:43:00.0",
            "0000:63:00.0"
        ]
    );
    let kfd: Vec<u32> = d.host.gpus.iter().map(|g| g.kfd_node).collect();
    assert_eq!(kfd, [3, 5, 2, 4]);
    let indices: Vec<usize> = d.host.gpus.iter().map(|g| g.index).collect();
    assert_eq!(indices, [0, 1, 2, 3]);
    assert_eq!(d.host.kfd.path, Path::new("/dev/kfd"));
    assert_eq!((d.host.kfd.major, d.host.kfd.minor), (511, 0));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn spx_placeholders_are_not_gpus() {
    let d = run("mi300x-spx");
    assert_eq!(d.host.gpus.len(), 8);
    for gpu in &d.host.gpus {
        assert_eq!(gpu.partition, None);
        assert_eq!(gpu.compute_partition.as_deref(), Some("SPX"));
        assert_eq!(gpu.gfx_target().as_deref(), Some("gfx942"));
    }
}

#[test]
fn cpx_partitions_with_render_minors_beyond_191() {
    let d = run("mi300x-cpx");
    assert_eq!(d.host.gpus.len(), 64);
    assert!(d.host.gpus.iter().any(|g| g.render.minor > 191));
    for (i, gpu) in d.host.gpus.iter().enumerate() {
        let partition = gpu.partition.as_ref().expect("partitioned");
        assert_eq!(partition.index as usize, i % 8);
        assert_eq!(
            (partition.count, partition.compute_mode.as_str()),
            (8, "CPX")
        );
        assert_eq!(partition.memory_mode.as_deref(), Some("NPS1"));
        assert_eq!(gpu.pci_address.function, 0);
    }
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn dot_named_partitions_and_a_partition_without_minor() {
    let d = run("mi300x-cpx-dot");
    assert_eq!(d.host.gpus.len(), 63);
    let last = d.host.gpus.last().expect("gpus");
    assert_eq!(last.pci_address.to_string(), "0000:18:00.0");
    assert_eq!(
        last.partition.as_ref().map(|p| (p.index, p.count)),
        Some((6, 7))
    );
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
}

#[test]
fn old_kernel_without_domain_uses_the_render_nodes_pci_parent() {
    let d = run("old-kernel");
    assert_eq!(addresses(&d.host), ["0000:03:00.0", "0001:03:00.0"]);
    assert!(
        d.host
            .gpus
            .iter()
            .all(|g| g.unique_id.is_none() && g.gfx_target_version.is_none())
    );
}

#[test]
fn apus_beside_discrete_gpus_and_other_vendors() {
    let d = run("workstation");
    let integrated: Vec<bool> = d.host.gpus.iter().map(|g| g.integrated).collect();
    assert_eq!(integrated, [false, true]);
    let d = run("nvidia-mixed");
    assert_eq!(addresses(&d.host), ["0000:41:00.0"]);
    assert_eq!(d.host.gpus[0].render.minor, 129);
    let d = run("multi-domain");
    assert_eq!(
        addresses(&d.host),
        ["0000:c1:00.0", "0001:41:00.0", "0002:81:00.0"]
    );
}

/// A sysfs tree in a temp dir with the PCI devices `(address, vendor, class)` and no KFD.
fn pci_only_sysfs(devices: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp sysfs");
    for (address, vendor, class) in devices {
        let dir = root.path().join("bus/pci/devices").join(address);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("vendor"), format!("{vendor}\n")).expect("vendor");
        std::fs::write(dir.join("class"), format!("{class}\n")).expect("class");
    }
    root
}

fn discover_in(sysfs_root: &Path) -> DiscoverError {
    discover(&DiscoverOptions {
        sysfs_root: sysfs_root.to_path_buf(),
        dev_root: PathBuf::from("/nonexistent/amdgpu-cdi-test-dev"),
    })
    .expect_err("no GPU")
}

/// Issue 14 item 6: without KFD, the PCI bus tells a machine without AMD GPUs (where loading a
/// driver cannot help) from one whose driver is missing; an AMD device that is not a display
/// controller or accelerator (HDMI audio) does not count.
#[test]
fn no_kfd_tells_no_amd_gpu_from_no_driver() {
    let err = discover(&example("no-amd")).expect_err("no amd");
    assert!(matches!(err, DiscoverError::NoAmdGpu { .. }), "{err}");
    let intel = pci_only_sysfs(&[
        ("0000:00:02.0", "0x8086", "0x030000"),
        ("0000:03:00.1", "0x1002", "0x040300"),
    ]);
    let err = discover_in(intel.path());
    assert_eq!(
        err.to_string(),
        format!(
            "no AMD GPU on this machine: {}/bus/pci/devices has no AMD (vendor 0x1002) display \
             controller or accelerator (to try amdgpu-cdi without one, pass --sysfs-root \
             examples/hosts/<name>/sys from the source tree)",
            intel.path().display()
        )
    );
    assert!(!err.to_string().contains("modprobe"), "{err}");
    let amd = pci_only_sysfs(&[
        ("0000:03:00.1", "0x1002", "0x040300"),
        ("0000:03:00.0", "0x1002", "0x030000"),
        ("0000:83:00.0", "0x1002", "0x120000"),
    ]);
    let err = discover_in(amd.path());
    assert!(matches!(err, DiscoverError::NoDriver { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("no usable AMD GPU: 0000:03:00.0, 0000:83:00.0 found"),
        "{err}"
    );
    assert!(err.to_string().contains("`modprobe amdgpu`"), "{err}");
}

/// When the PCI bus cannot be listed, whether there is an AMD GPU is unknown: the error says so
/// and keeps the driver advice.
#[test]
fn no_kfd_and_no_pci_listing_is_unknown() {
    let empty = tempfile::tempdir().expect("temp sysfs");
    let err = discover_in(empty.path());
    assert!(matches!(err, DiscoverError::NoKfd { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "no AMD GPU found: {root}/class/kfd does not exist, and {root}/bus/pci/devices cannot \
             be listed to tell whether there is one: no such file or directory (if there is, \
             load the amdgpu driver: `modprobe amdgpu`)",
            root = empty.path().display()
        )
    );
}

/// The real file system, except for chosen failures and `stat` answers.
struct Faulty {
    fail_suffix: &'static str,
    errno: i32,
    stats: Vec<(&'static str, NodeStat)>,
    generation: std::cell::Cell<u32>,
    bump_generation: bool,
}

impl Faulty {
    fn new(fail_suffix: &'static str, errno: i32) -> Self {
        Self {
            fail_suffix,
            errno,
            stats: Vec::new(),
            generation: 0.into(),
            bump_generation: false,
        }
    }
}

impl SysfsReader for Faulty {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if !self.fail_suffix.is_empty() && path.ends_with(self.fail_suffix) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        if self.bump_generation && path.ends_with("generation_id") {
            self.generation.set(self.generation.get() + 1);
            return Ok(format!("{}\n", self.generation.get()));
        }
        RealSysfs.read_to_string(path)
    }
    fn stat(&self, path: &Path) -> io::Result<NodeStat> {
        match self.stats.iter().find(|(suffix, _)| path.ends_with(suffix)) {
            Some((_, st)) => Ok(*st),
            None => Err(io::Error::from_raw_os_error(nix::libc::ENOENT)),
        }
    }
}

#[test]
fn eperm_on_a_gpu_node_is_an_error_naming_it() {
    let options = example("mi210x4");
    let reader = Faulty::new("topology/nodes/4/properties", nix::libc::EPERM);
    let err = discover_with(&options, &reader).expect_err("eperm");
    let expected = format!(
        "cannot read {}/class/kfd/kfd/topology/nodes/4/properties: operation not permitted (is \
         this running inside a restricted container?)",
        options.sysfs_root.display()
    );
    assert_eq!(err.to_string(), expected);

    let reader = Faulty::new("topology/nodes/3/gpu_id", nix::libc::EPERM);
    let err = discover_with(&options, &reader).expect_err("eperm on gpu_id");
    assert!(
        err.to_string()
            .contains("nodes/3/gpu_id: operation not permitted"),
        "{err}"
    );
}

#[test]
fn other_read_errors_on_optional_files_are_not_ignored() {
    let reader = Faulty::new("current_compute_partition", nix::libc::EIO);
    let err = discover_with(&example("mi300x-spx"), &reader).expect_err("eio");
    assert!(
        err.to_string()
            .ends_with("current_compute_partition: i/o error"),
        "{err}"
    );
}

#[test]
fn a_changing_topology_is_retried_then_reported() {
    let mut reader = Faulty::new("", 0);
    reader.bump_generation = true;
    let err = discover_with(&example("workstation"), &reader).expect_err("keeps changing");
    assert!(
        matches!(err, DiscoverError::TopologyChanged { attempts: 3, .. }),
        "{err}"
    );
}

#[test]
fn stat_fills_group_and_mode_and_mismatches_warn() {
    let mut reader = Faulty::new("", 0);
    let node = |major, minor| NodeStat {
        is_char_device: true,
        major,
        minor,
        gid: 992,
        mode: 0o660,
    };
    reader.stats = vec![
        ("dev/kfd", node(511, 0)),
        ("dev/dri/renderD128", node(1, 3)),
    ];
    let d = discover_with(&example("workstation"), &reader).expect("discovers");
    assert_eq!(
        (d.host.kfd.gid, d.host.kfd.file_mode),
        (Some(992), Some(0o660))
    );
    let render = &d.host.gpus[0].render;
    assert_eq!(
        (render.major, render.minor, render.gid),
        (226, 128, Some(992))
    );
    assert_eq!(d.host.gpus[1].render.gid, None);
    assert_eq!(
        d.warnings,
        [
            "/nonexistent/amdgpu-cdi-test-dev/dev/dri/renderD128 is 1:3 but sysfs says 226:128; \
          using 226:128"
        ]
    );
}

/// A minimal tree: one KFD GPU node whose render node hangs off `amdgpu_xcp_0`, without
/// `domain`, and AMD GPUs at bus 03 device 00 in the given domains.
fn xcp_tree(domains: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = dir.path().join("sys");
    let write = |path: &str, text: &str| {
        let path = sys.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("class/kfd/kfd/dev", "511:0\n");
    write(
        "class/kfd/kfd/topology/nodes/0/properties",
        "simd_count 152\nvendor_id 4098\ndevice_id 29857\nlocation_id 769\ndrm_render_minor 129\n",
    );
    write("class/kfd/kfd/topology/nodes/0/gpu_id", "1234\n");
    write(
        "devices/platform/amdgpu_xcp_0/drm/renderD129/dev",
        "226:129\n",
    );
    std::fs::create_dir_all(sys.join("class/drm")).expect("mkdir");
    std::fs::create_dir_all(sys.join("bus/pci/devices")).expect("mkdir");
    std::os::unix::fs::symlink(
        "../../devices/platform/amdgpu_xcp_0/drm/renderD129",
        sys.join("class/drm/renderD129"),
    )
    .expect("symlink");
    for domain in domains {
        let bdf = format!("{domain}:03:00.0");
        write(&format!("bus/pci/devices/{bdf}/vendor"), "0x1002\n");
        write(
            &format!("bus/pci/devices/{bdf}/current_compute_partition"),
            "CPX\n",
        );
        std::fs::create_dir_all(sys.join(format!("bus/pci/devices/{bdf}/drm"))).expect("mkdir");
    }
    dir
}

fn discover_tree(dir: &tempfile::TempDir) -> Result<Discovery, DiscoverError> {
    let options = DiscoverOptions {
        sysfs_root: dir.path().join("sys"),
        dev_root: PathBuf::from("/nonexistent/amdgpu-cdi-test-dev"),
    };
    discover_with(&options, &RealSysfs)
}

#[test]
fn partition_parent_without_domain_is_found_when_unique() {
    let dir = xcp_tree(&["0002"]);
    let d = discover_tree(&dir).expect("one candidate");
    let gpu = &d.host.gpus[0];
    assert_eq!(gpu.pci_address.to_string(), "0002:03:00.0");
    assert_eq!(
        gpu.partition.as_ref().map(|p| (p.index, p.count)),
        Some((1, 1))
    );
}

#[test]
fn partition_parent_without_domain_is_an_error_when_ambiguous() {
    let dir = xcp_tree(&["0000", "0001"]);
    let err = discover_tree(&dir).expect_err("two candidates");
    assert_eq!(
        err.to_string(),
        "cannot tell which PCI device KFD node 0 belongs to: 0000:03:00.0, 0001:03:00.0 all match \
         (this kernel's KFD topology has no `domain`)"
    );
    let dir = xcp_tree(&[]);
    let err = discover_tree(&dir).expect_err("no candidate");
    assert!(
        err.to_string()
            .starts_with("cannot find the PCI device of KFD node 0: no AMD GPU at *:03:00"),
        "{err}"
    );
}

/// Every host tree of the repository: the example hosts and the test fixtures.
fn all_host_trees() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut trees = Vec::new();
    for dir in ["examples/hosts", "tests/fixtures/hosts"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("host directory lists");
        for entry in entries {
            let sys = entry.expect("host entry").path().join("sys");
            if sys.is_dir() {
                trees.push(sys);
            }
        }
    }
    trees.sort();
    trees
}

#[test]
fn injection_discovery_finds_the_same_gpus_without_descriptions() {
    let trees = all_host_trees();
    assert!(trees.len() >= 15, "{trees:?}");
    let mut compared = 0;
    for sysfs_root in trees {
        let host = sysfs_root.display().to_string();
        let options = DiscoverOptions {
            sysfs_root,
            dev_root: PathBuf::from("/nonexistent/amdgpu-cdi-test-dev"),
        };
        let (full, light) = match (discover(&options), discover_for_injection(&options)) {
            (Ok(full), Ok(light)) => (full, light),
            (Err(full), Err(light)) => {
                assert_eq!(light.to_string(), full.to_string(), "{host}");
                continue;
            }
            (full, light) => panic!("{host}: full {full:?}, injection {light:?}"),
        };
        compared += 1;
        assert_eq!(light.kfd, full.kfd, "{host}");
        assert_eq!(light.gpus.len(), full.gpus.len(), "{host}");
        for (light, full) in light.gpus.iter().zip(&full.gpus) {
            let described = Gpu {
                render: full.render.clone(),
                card: full.card.clone(),
                numa_node: full.numa_node,
                product_name: full.product_name.clone(),
                gpu_id: full.gpu_id,
                ..light.clone()
            };
            assert_eq!(&described, full, "{host}");
            assert_eq!(light.gpu_id, 0, "injection does not read gpu_id");
            assert_eq!(light.render.path, full.render.path, "{host}");
            assert_eq!((light.render.major, light.render.minor), (0, 0));
            assert_eq!((light.render.gid, light.render.file_mode), (None, None));
            assert_eq!(light.card, None);
            assert_eq!(light.numa_node, None);
            assert_eq!(
                light.product_name,
                known_product(full.device_id).map(String::from)
            );
            for strategy in [
                crate::naming::NameStrategy::Index,
                crate::naming::NameStrategy::Uuid,
                crate::naming::NameStrategy::Pci,
            ] {
                assert_eq!(
                    crate::naming::device_name(light, strategy),
                    crate::naming::device_name(full, strategy),
                    "{host}"
                );
            }
        }
    }
    assert!(compared >= 10, "only {compared} hosts discovered");
}
