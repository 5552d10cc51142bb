//! File-system fixtures every test crate needs: a directory's names, the files that are not
//! regular files (which every writer must refuse and leave as they are), and an executable script.
//! Included with `#[path]`, like `skip.rs`, by the test crates and by the unit tests of the `cdi`,
//! `oci` and main crates, so it depends on nothing but std, nix and tempfile.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The names of the entries in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Writes `body` to `path` as an executable (mode 0755), e.g. a `#!/bin/sh` stand-in.
pub fn executable(path: &Path, body: &str) {
    fs::write(path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Files that are not regular files, in a temp dir: what the commands that write a file must
/// refuse and leave as they are (issue 12, item 2). The socket is bound while this lives.
pub struct NotRegular {
    /// The temp dir holding them.
    pub dir: tempfile::TempDir,
    /// A FIFO.
    pub fifo: PathBuf,
    /// A bound unix socket.
    pub socket: PathBuf,
    /// An empty directory.
    pub directory: PathBuf,
    _listener: std::os::unix::net::UnixListener,
}

/// Makes a FIFO, a socket and a directory with these names in a new temp dir.
pub fn not_regular_files(fifo: &str, socket: &str, directory: &str) -> NotRegular {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join(fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let socket = dir.path().join(socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let directory = dir.path().join(directory);
    fs::create_dir(&directory).expect("mkdir");
    NotRegular {
        dir,
        fifo,
        socket,
        directory,
        _listener: listener,
    }
}
