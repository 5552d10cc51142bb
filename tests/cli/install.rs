//! `scripts/install`, the README's install step from a source build: staged under a temp
//! `--destdir` with binaries from this test build (`--bin-dir`; the device plugin stood in for by
//! a script), then used as installed: the hooks.d files, unit and udev rule name the installed
//! binary, `configure --dry-run` finds the wrapper beside it, and `--uninstall` removes every file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{assert_contains, assert_lacks, repo_root};

/// A bin dir holding the three binaries `scripts/install` wants.
fn bin_dir(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("bin dir");
    for (name, source) in [
        ("amdgpu-cdi", env!("CARGO_BIN_EXE_amdgpu-cdi")),
        (
            "amdgpu-container-runtime",
            env!("CARGO_BIN_EXE_amdgpu-container-runtime"),
        ),
    ] {
        fs::copy(source, bin.join(name)).expect("copy binary");
    }
    let plugin = bin.join("amdgpu-cdi-device-plugin");
    crate::files::executable(&plugin, "#!/bin/sh\necho plugin\n");
    bin
}

fn install(args: &[&str]) -> std::process::Output {
    Command::new(repo_root().join("scripts/install"))
        .args(args)
        .output()
        .expect("run scripts/install")
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).expect("under base");
                out.push(format!("/{}", rel.display()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_puts_binaries_hooks_unit_and_docs_where_they_are_read_and_uninstall_removes_them() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let bin = bin_dir(tmp.path());
    let dest = tmp.path().join("dest");
    let (dest_arg, bin_arg) = (dest.display().to_string(), bin.display().to_string());
    let out = install(&["--destdir", &dest_arg, "--bin-dir", &bin_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_contains(
        &stdout,
        "binaries in /usr/local/bin: amdgpu-cdi amdgpu-container-runtime amdgpu-cdi-device-plugin",
    );

    let installed = files(&dest);
    for wanted in [
        "/usr/local/bin/amdgpu-cdi",
        "/usr/local/bin/amdgpu-container-runtime",
        "/usr/local/bin/amdgpu-cdi-device-plugin",
        "/usr/share/containers/oci/hooks.d/amdgpu-cdi-precreate.json",
        "/usr/share/containers/oci/hooks.d/amdgpu-cdi-prestart.json",
        "/etc/systemd/system/amdgpu-cdi-refresh.service",
        "/etc/udev/rules.d/60-amdgpu-cdi.rules",
        "/usr/local/share/man/man1/amdgpu-cdi.1",
        "/usr/local/share/man/man1/amdgpu-cdi-generate.1",
        "/usr/local/share/bash-completion/completions/amdgpu-cdi",
        "/usr/local/share/zsh/site-functions/_amdgpu-cdi",
        "/usr/local/share/fish/vendor_completions.d/amdgpu-cdi.fish",
        "/usr/local/share/amdgpu-cdi/installed-files",
    ] {
        assert!(
            installed.iter().any(|f| f == wanted),
            "{wanted} not in {installed:?}"
        );
    }
    let manifest = fs::read_to_string(dest.join("usr/local/share/amdgpu-cdi/installed-files"))
        .expect("manifest");
    let mut listed: Vec<&str> = manifest.lines().collect();
    listed.sort_unstable();
    assert_eq!(
        listed, installed,
        "the manifest lists exactly what was installed"
    );
    let mode = fs::metadata(dest.join("usr/local/bin/amdgpu-container-runtime"))
        .expect("wrapper")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // Everything that runs the binary names the installed one.
    for file in [
        "usr/share/containers/oci/hooks.d/amdgpu-cdi-precreate.json",
        "usr/share/containers/oci/hooks.d/amdgpu-cdi-prestart.json",
        "etc/systemd/system/amdgpu-cdi-refresh.service",
        "etc/udev/rules.d/60-amdgpu-cdi.rules",
    ] {
        let text = fs::read_to_string(dest.join(file)).expect("installed file");
        assert!(!text.contains("/usr/bin/amdgpu-cdi"), "{file}:\n{text}");
    }
    let hook: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dest.join("usr/share/containers/oci/hooks.d/amdgpu-cdi-prestart.json"))
            .expect("hook"),
    )
    .expect("hook json");
    assert_eq!(hook["hook"]["path"], "/usr/local/bin/amdgpu-cdi");
    let unit = fs::read_to_string(dest.join("etc/systemd/system/amdgpu-cdi-refresh.service"))
        .expect("unit");
    assert_contains(&unit, "ExecStart=/usr/local/bin/amdgpu-cdi generate");

    // The installed amdgpu-cdi configures Docker with the wrapper installed beside it.
    let config = tmp.path().join("daemon.json");
    let configure = Command::new(dest.join("usr/local/bin/amdgpu-cdi"))
        .args(["configure", "docker", "--dry-run", "--config"])
        .arg(&config)
        .output()
        .expect("configure");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&configure.stdout),
        String::from_utf8_lossy(&configure.stderr),
    );
    assert!(configure.status.success(), "{stdout}{stderr}");
    assert_lacks(&stderr, "does not exist");
    let wrapper = dest.join("usr/local/bin/amdgpu-container-runtime");
    assert_contains(&stdout, &format!("\"path\": \"{}\"", wrapper.display()));

    let out = install(&["--destdir", &dest_arg, "--uninstall"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&dest), Vec::<String>::new(), "uninstall left files");
}

#[test]
fn install_refuses_relative_paths_and_unknown_arguments_in_one_line() {
    for (args, expected) in [
        (
            vec!["--prefix", "usr/local"],
            "install: --prefix usr/local: not an absolute path\n",
        ),
        (
            vec!["--frobnicate"],
            "install: unknown argument --frobnicate (see the head of scripts/install)\n",
        ),
        (vec!["--destdir"], "install: --destdir needs a directory\n"),
    ] {
        let out = install(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dest = tmp.path().display().to_string();
    let out = install(&["--destdir", &dest, "--uninstall"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "install: {dest}/usr/local/share/amdgpu-cdi/installed-files does not exist: nothing \
             was installed with --prefix /usr/local\n"
        )
    );
}
