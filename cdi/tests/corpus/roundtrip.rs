//! Writing a spec and reading it back gives the same spec, in both formats, for every valid
//! corpus file and for generated specs full of strings YAML readers like to reinterpret.

use std::collections::BTreeMap;

use cdi::codec::{self, Format};
use cdi::spec::{ContainerEdits, Device, DeviceNode, Hook, IntelRdt, Mount, NetDevice, Spec};
use proptest::prelude::*;

use super::{Expected, corpus_dir, manifest};

#[test]
fn every_valid_corpus_spec_survives_a_round_trip_in_both_formats() {
    for (file, expected) in manifest() {
        if !matches!(expected, Expected::Valid(_)) {
            continue;
        }
        let spec = codec::load(&corpus_dir().join(&file)).expect("valid spec loads");
        for format in [Format::Yaml, Format::Json] {
            let text = codec::to_string(&spec, format);
            assert!(
                text.ends_with('\n'),
                "{file} as {format}: no trailing newline"
            );
            let back = codec::parse(text.as_bytes(), format)
                .unwrap_or_else(|e| panic!("{file} as {format} does not re-parse: {e}\n{text}"));
            assert_eq!(back, spec, "{file} as {format} changed:\n{text}");
        }
    }
}

/// Strings that YAML 1.1 or 1.2 readers turn into something else when left unquoted, or that
/// need escaping.
const AWKWARD: &[&str] = &[
    "",
    " ",
    " leading",
    "trailing ",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "0",
    "-0",
    "+1",
    "0755",
    "0o17",
    "0x1A",
    "0b11",
    "1_000",
    "1e3",
    "1.0",
    ".5",
    ".inf",
    "-.Inf",
    ".nan",
    "12:30:00",
    "2001-12-14",
    "2001-12-14T21:59:43.10-05:00",
    "<<",
    "=",
    "- item",
    "-",
    "? key",
    ": colon",
    "a: b",
    "a #b",
    "#comment",
    "&anchor",
    "*alias",
    "!tag",
    "!!str",
    "%YAML",
    "@at",
    "`tick",
    "'",
    "\"",
    "'single'",
    "\"double\"",
    "\\",
    "a\nb",
    "trailing newline\n",
    "\ttab",
    "\r",
    "\u{0}",
    "\u{7}",
    "\u{1b}[0m",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}bom",
    "é",
    "日本",
    "🦀",
    "{a: b}",
    "[a]",
    "}",
    "]",
    ",",
    "|",
    ">",
    "--- ",
    "...",
    "0000:03:00.0",
    "GPU-1a2b",
    "A=1",
    "=x",
];

fn awkward() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(AWKWARD).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[ -~]{0,12}",
    ]
}

fn strings(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(awkward(), 0..max)
}

fn device_node() -> impl Strategy<Value = DeviceNode> {
    (
        (
            awkward(),
            proptest::option::of(awkward()),
            proptest::option::of(awkward()),
        ),
        (
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
        ),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(awkward()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
        ),
    )
        .prop_map(
            |((path, host_path, kind), (major, minor), (file_mode, permissions, uid, gid))| {
                DeviceNode {
                    path,
                    host_path,
                    kind,
                    major,
                    minor,
                    file_mode,
                    permissions,
                    uid,
                    gid,
                }
            },
        )
}

fn edits() -> impl Strategy<Value = ContainerEdits> {
    let hook = (
        awkward(),
        awkward(),
        strings(3),
        strings(3),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(hook_name, path, args, env, timeout)| Hook {
            hook_name,
            path,
            args,
            env,
            timeout,
        });
    let mount = (
        awkward(),
        awkward(),
        strings(3),
        proptest::option::of(awkward()),
    )
        .prop_map(|(host_path, container_path, options, kind)| Mount {
            host_path,
            container_path,
            options,
            kind,
        });
    let rdt = (
        proptest::option::of(awkward()),
        proptest::option::of(awkward()),
        proptest::option::of(awkward()),
        strings(3),
        any::<bool>(),
    )
        .prop_map(
            |(clos_id, l3_cache_schema, mem_bw_schema, schemata, enable_monitoring)| IntelRdt {
                clos_id,
                l3_cache_schema,
                mem_bw_schema,
                schemata,
                enable_monitoring,
            },
        );
    let net = (awkward(), awkward()).prop_map(|(host_interface_name, name)| NetDevice {
        host_interface_name,
        name,
    });
    (
        strings(4),
        proptest::collection::vec(device_node(), 0..3),
        proptest::collection::vec(net, 0..2),
        proptest::collection::vec(hook, 0..2),
        proptest::collection::vec(mount, 0..2),
        proptest::option::of(rdt),
        proptest::collection::vec(any::<u32>(), 0..3),
    )
        .prop_map(
            |(env, device_nodes, net_devices, hooks, mounts, intel_rdt, additional_gids)| {
                ContainerEdits {
                    env,
                    device_nodes,
                    net_devices,
                    hooks,
                    mounts,
                    intel_rdt,
                    additional_gids,
                }
            },
        )
}

fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(awkward(), awkward(), 0..3)
}

fn spec() -> impl Strategy<Value = Spec> {
    let device =
        (awkward(), annotations(), edits()).prop_map(|(name, annotations, container_edits)| {
            Device {
                name,
                annotations,
                container_edits,
            }
        });
    (
        awkward(),
        awkward(),
        annotations(),
        proptest::collection::vec(device, 0..3),
        edits(),
    )
        .prop_map(
            |(cdi_version, kind, annotations, devices, container_edits)| Spec {
                cdi_version,
                kind,
                annotations,
                devices,
                container_edits,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn yaml_round_trip_keeps_every_value(spec in spec()) {
        let text = codec::to_string(&spec, Format::Yaml);
        let back = codec::parse(text.as_bytes(), Format::Yaml);
        prop_assert_eq!(back.as_ref().ok(), Some(&spec), "{:?}\n{}", back.as_ref().err(), text);
    }

    #[test]
    fn json_round_trip_keeps_every_value(spec in spec()) {
        let text = codec::to_string(&spec, Format::Json);
        let back = codec::parse(text.as_bytes(), Format::Json);
        prop_assert_eq!(back.as_ref().ok(), Some(&spec), "{:?}\n{}", back.as_ref().err(), text);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::parse(&bytes, Format::Yaml);
        let _ = codec::parse(&bytes, Format::Json);
    }

    #[test]
    fn validating_any_spec_never_panics(spec in spec()) {
        for problem in cdi::validate::validate(&spec) {
            prop_assert!(!problem.field.is_empty());
        }
        let _ = cdi::version::minimum_required_version(&spec);
    }
}
