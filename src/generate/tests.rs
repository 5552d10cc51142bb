//! Unit tests of spec generation on hand-made hosts; example hosts are snapshot-tested by the CLI.

use std::path::PathBuf;

use super::*;
use crate::discover::{Partition, PciAddress};

fn node(path: &str, major: u32, minor: u32, gid: Option<u32>) -> FoundNode {
    FoundNode {
        path: PathBuf::from(path),
        major,
        minor,
        gid,
        file_mode: gid.map(|_| 0o660),
    }
}

fn gpu(index: usize, bus: u8, partition: Option<u32>, unique_id: Option<u64>) -> Gpu {
    let minor = 128 + u32::try_from(index).expect("small index");
    Gpu {
        index,
        pci_address: PciAddress {
            domain: 0,
            bus,
            device: 0,
            function: 0,
        },
        partition: partition.map(|index| Partition {
            index,
            count: 2,
            compute_mode: "DPX".into(),
            memory_mode: Some("NPS1".into()),
        }),
        kfd_node: u32::try_from(index).expect("small index") + 1,
        gpu_id: 4242,
        unique_id,
        hive_id: None,
        vendor_id: 0x1002,
        device_id: 0x74a1,
        gfx_target_version: Some(90402),
        render: node(&format!("/dev/dri/renderD{minor}"), 226, minor, Some(992)),
        card: Some(node(
            &format!("/dev/dri/card{}", minor - 127),
            226,
            minor - 127,
            Some(44),
        )),
        numa_node: Some(0),
        product_name: Some("AMD Instinct MI300X".into()),
        integrated: false,
        compute_partition: partition.map(|_| "DPX".into()),
        memory_partition: partition.map(|_| "NPS1".into()),
    }
}

fn host() -> Host {
    Host {
        kfd: node("/dev/kfd", 511, 0, Some(992)),
        gpus: vec![
            gpu(0, 3, Some(0), Some(0xabc)),
            gpu(1, 3, Some(1), Some(0xabc)),
        ],
    }
}

fn nodes(edits: &ContainerEdits) -> Vec<&str> {
    edits.device_nodes.iter().map(|n| n.path.as_str()).collect()
}

#[test]
fn defaults_give_index_and_uuid_names_all_and_kfd_at_0_5_0() {
    let spec = generate(&host(), &GenerateOptions::default()).expect("spec");
    assert_eq!(spec.cdi_version, "0.5.0");
    assert_eq!(spec.kind, "amd.com/gpu");
    let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0",
            "1",
            "GPU-0000000000000abc-p0",
            "GPU-0000000000000abc-p1",
            "all"
        ]
    );
    assert_eq!(
        nodes(&spec.devices[1].container_edits),
        ["/dev/dri/renderD129"]
    );
    assert_eq!(
        spec.devices[3].container_edits,
        spec.devices[1].container_edits
    );
    assert_eq!(
        nodes(&spec.devices[4].container_edits),
        ["/dev/dri/renderD128", "/dev/dri/renderD129"]
    );
    assert_eq!(nodes(&spec.container_edits), ["/dev/kfd"]);
    let kfd = &spec.container_edits.device_nodes[0];
    assert_eq!(
        (kfd.major, kfd.minor, kfd.file_mode, &kfd.host_path),
        (None, None, None, &None)
    );
}

#[test]
fn uuid_only_without_index_needs_only_0_3_0() {
    let options = GenerateOptions {
        strategies: vec![NameStrategy::Uuid],
        all_device: false,
        ..GenerateOptions::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    assert_eq!(spec.cdi_version, "0.3.0");
    let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["GPU-0000000000000abc-p0", "GPU-0000000000000abc-p1"]
    );
}

#[test]
fn dev_root_adds_host_paths() {
    let options = GenerateOptions {
        dev_root: PathBuf::from("/tmp/root"),
        ..Default::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    let kfd = &spec.container_edits.device_nodes[0];
    assert_eq!(kfd.path, "/dev/kfd");
    assert_eq!(kfd.host_path.as_deref(), Some("/tmp/root/dev/kfd"));
}

#[test]
fn pinning_writes_numbers_and_mode() {
    let options = GenerateOptions {
        pin_device_numbers: true,
        ..Default::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    let render = &spec.devices[0].container_edits.device_nodes[0];
    assert_eq!(render.kind.as_deref(), Some("c"));
    assert_eq!(
        (render.major, render.minor, render.file_mode),
        (Some(226), Some(128), Some(0o660))
    );
}

#[test]
fn card_nodes_only_when_asked() {
    let options = GenerateOptions {
        include_card_nodes: true,
        ..Default::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    assert_eq!(
        nodes(&spec.devices[0].container_edits),
        ["/dev/dri/renderD128", "/dev/dri/card1"]
    );
}

#[test]
fn additional_gids_need_0_7_0_and_known_groups() {
    let options = GenerateOptions {
        additional_gids: true,
        ..Default::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    assert_eq!(spec.cdi_version, "0.7.0");
    assert_eq!(spec.container_edits.additional_gids, [992]);

    let mut unknown = host();
    unknown.gpus[1].render.gid = None;
    assert_eq!(
        generate(&unknown, &options)
            .expect_err("no group")
            .to_string(),
        "cannot tell the group of /dev/dri/renderD129: it does not exist (point --dev-root at \
         the host's nodes or drop --additional-gids)"
    );
}

#[test]
fn explicit_versions_are_checked() {
    let options = GenerateOptions {
        annotations: true,
        cdi_version: Some("0.5.0".parse().expect("version")),
        ..Default::default()
    };
    assert_eq!(
        generate(&host(), &options)
            .expect_err("too old")
            .to_string(),
        "cdiVersion 0.5.0 cannot hold this spec: annotations needs 0.6.0 or newer"
    );
    let newer = GenerateOptions {
        cdi_version: Some("0.7.0".parse().expect("version")),
        ..Default::default()
    };
    assert_eq!(
        generate(&host(), &newer)
            .expect("newer is fine")
            .cdi_version,
        "0.7.0"
    );
    let bogus = GenerateOptions {
        cdi_version: Some("0.9.0".parse().expect("version")),
        ..Default::default()
    };
    assert!(matches!(
        generate(&host(), &bogus),
        Err(GenerateError::UnknownVersion(_))
    ));
}

#[test]
fn annotations_describe_the_gpu() {
    let options = GenerateOptions {
        annotations: true,
        ..Default::default()
    };
    let spec = generate(&host(), &options).expect("spec");
    let a = &spec.devices[1].annotations;
    assert_eq!(a["amd.com/pci-address"], "0000:03:00.0");
    assert_eq!(a["amd.com/partition-index"], "1");
    assert_eq!(a["amd.com/compute-partition"], "DPX");
    assert_eq!(a["amd.com/gfx-target"], "gfx942");
    assert_eq!(a["amd.com/unique-id"], "GPU-0000000000000abc");
    assert!(
        spec.devices[4].annotations.is_empty(),
        "the all device has none"
    );
}

#[test]
fn unnamed_and_duplicate_names_are_errors() {
    let mut no_uuid = host();
    no_uuid.gpus[1].unique_id = None;
    let uuid_only = GenerateOptions {
        strategies: vec![NameStrategy::Uuid],
        ..Default::default()
    };
    assert_eq!(
        generate(&no_uuid, &uuid_only)
            .expect_err("unnamed")
            .to_string(),
        "GPU 1 (0000:03:00.0) has no unique id, so the uuid strategy cannot name it (add \
         --device-name-strategy index or pci)"
    );
    let mut twins = host();
    twins.gpus[1].partition = None;
    twins.gpus[0].partition = None;
    let pci = GenerateOptions {
        strategies: vec![NameStrategy::Pci],
        ..Default::default()
    };
    assert!(matches!(
        generate(&twins, &pci),
        Err(GenerateError::DuplicateName {
            first: 0,
            second: 1,
            ..
        })
    ));
}

#[test]
fn kind_parts_follow_the_reference_rules() {
    for (vendor, ok) in [
        ("amd.com", true),
        ("a", false),
        ("1amd", false),
        ("amd-", false),
        ("am/d", false),
    ] {
        let options = GenerateOptions {
            vendor: vendor.into(),
            ..Default::default()
        };
        assert_eq!(generate(&host(), &options).is_ok(), ok, "{vendor}");
    }
    let dotted = GenerateOptions {
        class: "gpu.v2".into(),
        strategies: vec![NameStrategy::Uuid],
        ..Default::default()
    };
    assert_eq!(
        generate(&host(), &dotted)
            .expect("dotted class")
            .cdi_version,
        "0.6.0"
    );
}
