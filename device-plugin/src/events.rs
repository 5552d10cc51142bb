//! What wakes the plugin up: inotify on the dev directory (`kfd`, `dri/`), on `dev/dri` (render
//! nodes) and on the device plugin directory (`kubelet.sock`, the plugins' sockets). Nothing is
//! polled: a thread blocks in `read` on the inotify descriptor and hands what the events mean
//! to the async side, so with no event the plugin uses no CPU. (A thread rather than tokio's
//! `AsyncFd`, whose safe constructor is deprecated: registering a raw descriptor needs `unsafe`.)
//!
//! sysfs attributes (KFD topology, `current_compute_partition`) produce no inotify events, so
//! the plugin does not watch sysfs: it rediscovers the host from sysfs whenever a node under
//! `/dev` appears or disappears (the kernel creates and removes render nodes with their GPUs
//! and partitions, and devtmpfs reports both), and on SIGHUP, for partition switches that keep
//! every render node (kernels whose `amdgpu_xcp` placeholder nodes exist in every mode).

use std::io;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::sync::mpsc;

use crate::api::KUBELET_SOCKET;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent {
    /// A device node appeared or went: rediscover.
    Devices,
    /// `kubelet.sock` was created (the kubelet restarted) or a socket went: check the sockets and
    /// register again.
    Kubelet,
}

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify could not be set up on a directory.
    #[error("cannot watch {}: {} (is it a directory?)", path.display(), errno.desc().to_lowercase())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The failure.
        errno: nix::Error,
    },
    /// The watching thread could not be started.
    #[error("cannot start the inotify thread: {0}")]
    Thread(io::Error),
    /// Reading events failed.
    #[error("cannot read inotify events: {0}")]
    Read(io::Error),
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The watches, owned by the reading thread.
struct Watches {
    inotify: Inotify,
    dev: WatchDescriptor,
    dri: Option<WatchDescriptor>,
    dri_path: PathBuf,
    plugins: WatchDescriptor,
}

/// The receiving end of the watching thread.
pub struct Watcher {
    changes: mpsc::Receiver<Result<Vec<WatchEvent>, WatchError>>,
}

impl Watcher {
    /// Watches `dev_dir` (and its `dri/` when present) and `plugin_dir`.
    pub fn new(dev_dir: &Path, plugin_dir: &Path) -> Result<Self, WatchError> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|errno| WatchError::Watch {
            path: dev_dir.to_path_buf(),
            errno,
        })?;
        let watch = |path: &Path| {
            inotify
                .add_watch(path, DIR_EVENTS)
                .map_err(|errno| WatchError::Watch {
                    path: path.to_path_buf(),
                    errno,
                })
        };
        let dev = watch(dev_dir)?;
        let plugins = watch(plugin_dir)?;
        let dri_path = dev_dir.join("dri");
        let dri = watch(&dri_path).ok();
        let mut watches = Watches {
            inotify,
            dev,
            dri,
            dri_path,
            plugins,
        };
        let (sender, changes) = mpsc::channel(16);
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || {
                loop {
                    let read = watches
                        .inotify
                        .read_events()
                        .map(|events| watches.classify(&events))
                        .map_err(|errno| WatchError::Read(io::Error::from(errno)));
                    let failed = read.is_err();
                    if sender.blocking_send(read).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(WatchError::Thread)?;
        Ok(Self { changes })
    }

    /// Waits for events and returns what they mean (possibly nothing, for unrelated nodes).
    pub async fn next(&mut self) -> Result<Vec<WatchEvent>, WatchError> {
        match self.changes.recv().await {
            Some(changes) => changes,
            None => Err(WatchError::Read(io::Error::other(
                "the inotify thread stopped",
            ))),
        }
    }
}

impl Watches {
    fn classify(&mut self, events: &[InotifyEvent]) -> Vec<WatchEvent> {
        let mut changes = Vec::new();
        let mut push = |change: WatchEvent| {
            if !changes.contains(&change) {
                changes.push(change);
            }
        };
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                push(WatchEvent::Devices);
                push(WatchEvent::Kubelet);
                continue;
            }
            let name = event.name.as_deref().and_then(|n| n.to_str()).unwrap_or("");
            let appeared = event
                .mask
                .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
            if event.wd == self.dev {
                match name {
                    "kfd" => push(WatchEvent::Devices),
                    "dri" => {
                        if appeared {
                            self.dri = self.inotify.add_watch(&self.dri_path, DIR_EVENTS).ok();
                        }
                        push(WatchEvent::Devices);
                    }
                    _ => {}
                }
            } else if Some(event.wd) == self.dri {
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.dri = None;
                }
                push(WatchEvent::Devices);
            } else if event.wd == self.plugins {
                let kubelet_back = appeared && name == KUBELET_SOCKET;
                let socket_gone = !appeared && name.ends_with(".sock");
                if kubelet_back || socket_gone {
                    push(WatchEvent::Kubelet);
                }
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The next changes, skipping events about unrelated files.
    async fn next(watcher: &mut Watcher) -> Vec<WatchEvent> {
        loop {
            let changes = tokio::time::timeout(Duration::from_secs(5), watcher.next())
                .await
                .expect("an event within 5 s")
                .expect("events");
            if !changes.is_empty() {
                return changes;
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn node_and_socket_changes_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dev = dir.path().join("dev");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&dev).expect("file operation");
        std::fs::create_dir_all(&plugins).expect("file operation");
        let mut watcher = Watcher::new(&dev, &plugins).expect("watcher");

        // dri/ appears later, and is watched from then on.
        std::fs::create_dir(dev.join("dri")).expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Devices]);
        std::fs::write(dev.join("dri/renderD128"), "").expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Devices]);
        std::fs::remove_file(dev.join("dri/renderD128")).expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Devices]);
        std::fs::write(dev.join("kfd"), "").expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Devices]);

        std::fs::write(plugins.join("kubelet_internal_checkpoint"), "").expect("file operation");
        std::fs::write(plugins.join(KUBELET_SOCKET), "").expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Kubelet]);
        std::fs::write(plugins.join("amdgpu-cdi-gpu.sock"), "").expect("file operation");
        std::fs::remove_file(plugins.join("amdgpu-cdi-gpu.sock")).expect("file operation");
        assert_eq!(next(&mut watcher).await, [WatchEvent::Kubelet]);
    }
}
