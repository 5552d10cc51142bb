//! Unit tests of spec generation on hand-made hosts; example hosts are snapshot-tested by the CLI.

use std::path::PathBuf;

use super::*;
use crate::discover::fixture::{gpu, node};

fn host() -> Host {
    Host {
        kfd: node("/dev/kfd", 511, 0, Some(992)),
        gpus: vec![
            gpu(0, 3, Some(0), Some(0xabc)),
            gpu(1, 3, Some(1), Some(0xabc)),
        ],
    }
}

/// The default options changed by `change`.
fn options_with(change: impl FnOnce(&mut GenerateOptions)) -> GenerateOptions {
    let mut options = GenerateOptions::default();
    change(&mut options);
    options
}

/// The spec of [`host`] under the default options changed by `change`.
fn spec_with(change: impl FnOnce(&mut GenerateOptions)) -> Spec {
    generate(&host(), &options_with(change)).expect("spec")
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
    let spec = spec_with(|o| {
        o.strategies = vec![NameStrategy::Uuid];
        o.all_device = false;
    });
    assert_eq!(spec.cdi_version, "0.3.0");
    let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["GPU-0000000000000abc-p0", "GPU-0000000000000abc-p1"]
    );
}

#[test]
fn dev_root_adds_host_paths() {
    let spec = spec_with(|o| o.dev_root = PathBuf::from("/tmp/root"));
    let kfd = &spec.container_edits.device_nodes[0];
    assert_eq!(kfd.path, "/dev/kfd");
    assert_eq!(kfd.host_path.as_deref(), Some("/tmp/root/dev/kfd"));
}

#[test]
fn pinning_writes_numbers_and_mode() {
    let spec = spec_with(|o| o.pin_device_numbers = true);
    let render = &spec.devices[0].container_edits.device_nodes[0];
    assert_eq!(render.kind.as_deref(), Some("c"));
    assert_eq!(
        (render.major, render.minor, render.file_mode),
        (Some(226), Some(128), Some(0o660))
    );
}

#[test]
fn card_nodes_only_when_asked() {
    let spec = spec_with(|o| o.include_card_nodes = true);
    assert_eq!(
        nodes(&spec.devices[0].container_edits),
        ["/dev/dri/renderD128", "/dev/dri/card1"]
    );
}

#[test]
fn additional_gids_need_0_7_0_and_known_groups() {
    let options = options_with(|o| o.additional_gids = true);
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
    let old = options_with(|o| {
        o.annotations = true;
        o.cdi_version = Some("0.5.0".parse().expect("version"));
    });
    assert_eq!(
        generate(&host(), &old).expect_err("too old").to_string(),
        "cdiVersion 0.5.0 cannot hold this spec: annotations needs 0.6.0 or newer"
    );
    let newer = options_with(|o| o.cdi_version = Some("0.7.0".parse().expect("version")));
    assert_eq!(
        generate(&host(), &newer)
            .expect("newer is fine")
            .cdi_version,
        "0.7.0"
    );
    let bogus = options_with(|o| o.cdi_version = Some("0.9.0".parse().expect("version")));
    assert!(matches!(
        generate(&host(), &bogus),
        Err(GenerateError::UnknownVersion(_))
    ));
}

#[test]
fn annotations_describe_the_gpu() {
    let spec = spec_with(|o| o.annotations = true);
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
    let uuid_only = options_with(|o| o.strategies = vec![NameStrategy::Uuid]);
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
    let pci = options_with(|o| o.strategies = vec![NameStrategy::Pci]);
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
        let options = options_with(|o| o.vendor = vendor.into());
        assert_eq!(generate(&host(), &options).is_ok(), ok, "{vendor}");
    }
    let dotted = spec_with(|o| {
        o.class = "gpu.v2".into();
        o.strategies = vec![NameStrategy::Uuid];
    });
    assert_eq!(dotted.cdi_version, "0.6.0");
}
