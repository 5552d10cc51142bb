//! Exact bytes of what users see: a representative spec written in both formats, and the
//! error text for every invalid corpus file.

use cdi::codec::{self, Format};

use super::{Expected, Verdict, corpus_dir, judge, manifest};

/// A spec using every edit kind, with strings a YAML 1.1 reader would otherwise reinterpret.
fn representative() -> cdi::spec::Spec {
    let path = corpus_dir().join("valid-amd-gpu.yaml");
    let mut spec = codec::load(&path).expect("valid-amd-gpu.yaml loads");
    spec.cdi_version = "1.1.0".to_owned();
    spec.annotations
        .insert("vendor.com/note".to_owned(), "yes".to_owned());
    let edits = &mut spec.devices[0].container_edits;
    edits.env = vec![
        "ON=on".to_owned(),
        "MODE=0755".to_owned(),
        "EMPTY=".to_owned(),
    ];
    edits.device_nodes[0].host_path = Some("/dev/dri/renderD128".to_owned());
    edits.device_nodes[0].kind = Some("c".to_owned());
    edits.device_nodes[0].major = Some(226);
    edits.device_nodes[0].minor = Some(128);
    edits.device_nodes[0].file_mode = Some(0o666);
    edits.device_nodes[0].permissions = Some("rw".to_owned());
    edits.device_nodes[0].gid = Some(992);
    edits.mounts.push(cdi::spec::Mount {
        host_path: "/opt/rocm-6.1.0".to_owned(),
        container_path: "/opt/rocm".to_owned(),
        options: vec!["ro".to_owned(), "bind".to_owned()],
        kind: Some("none".to_owned()),
    });
    edits.hooks.push(cdi::spec::Hook {
        hook_name: "createContainer".to_owned(),
        path: "/usr/bin/amdgpu-cdi-hook".to_owned(),
        args: vec!["amdgpu-cdi-hook".to_owned(), "1_000".to_owned()],
        env: vec!["NO=no".to_owned()],
        timeout: Some(5),
    });
    edits.additional_gids = vec![992];
    edits.intel_rdt = Some(cdi::spec::IntelRdt {
        clos_id: Some("gpu".to_owned()),
        schemata: vec!["L3:0=ff".to_owned()],
        enable_monitoring: true,
        ..Default::default()
    });
    edits.net_devices.push(cdi::spec::NetDevice {
        host_interface_name: "enp3s0f0".to_owned(),
        name: "eth1".to_owned(),
    });
    spec
}

#[test]
fn representative_spec_as_yaml() {
    insta::assert_snapshot!(codec::to_string(&representative(), Format::Yaml));
}

#[test]
fn representative_spec_as_json() {
    insta::assert_snapshot!(codec::to_string(&representative(), Format::Json));
}

#[test]
fn error_messages_for_every_invalid_corpus_file() {
    let mut out = String::new();
    for (file, expected) in manifest() {
        if matches!(expected, Expected::Valid(_)) {
            continue;
        }
        match judge(&corpus_dir().join(&file)) {
            Verdict::ParseError(error) => {
                let text = error
                    .to_string()
                    .replace(&format!("{}/", corpus_dir().display()), "");
                out.push_str(&format!("{text}\n"));
            }
            Verdict::Checked { problems, .. } => {
                for problem in problems {
                    out.push_str(&format!("{file}: {problem}\n"));
                }
            }
        }
    }
    insta::assert_snapshot!(out);
}
