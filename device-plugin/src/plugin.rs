//! The plugin's life: discover, write the spec, serve one socket per resource, register with the
//! kubelet, then follow device changes and kubelet restarts until SIGTERM.
//!
//! Order matters: the spec is written before any device is advertised, and a device whose name
//! is not in the spec on disk (a write failed) is advertised unhealthy, so the kubelet never
//! hands out a CDI name that does not resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use amdgpu_cdi::discover::wsl::looks_like_wsl;
use amdgpu_cdi::discover::{DiscoverError, Host, RealSysfs, discover_with};
use amdgpu_cdi::error_text::error_line;
use amdgpu_cdi::generate::{GenerateError, GenerateOptions, generate, to_text};
use amdgpu_cdi::naming::NameStrategy;
use cdi::codec::Format;
use cdi::spec::Spec;
use cdi::write::WriteOutcome;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{WatchError, WatchEvent, Watcher};
use crate::inventory::{Inventory, InventoryError, node_exists, socket_name};
use crate::kubelet::{RegisterError, register};
use crate::log;
use crate::options::PluginOptions;
use crate::server::{ServeError, Server, Snapshot};

/// How long after a first event the plugin acts, so one burst (64 render nodes after a
/// partition switch) gives one rescan.
const SETTLE: Duration = Duration::from_millis(100);
/// The longest wait between registration attempts while the kubelet does not answer.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Why the plugin stopped.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A directory the plugin needs is missing.
    #[error("{} does not exist ({hint})", path.display())]
    MissingDir {
        /// The directory.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },
    /// A WSL2 host: its GPUs reach containers through `/dev/dxg`, all of them at once.
    #[error(
        "this is a WSL2 host (/dev/dxg, no KFD): a container given /dev/dxg sees every GPU, so \
         there is nothing to hand out one by one; use `amdgpu-cdi generate` and request \
         amd.com/gpu=all (docs/wsl.md)"
    )]
    Wsl,
    /// The host could not be discovered at startup.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// The host cannot be advertised under the chosen strategy.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The spec could not be generated.
    #[error("cannot generate the CDI spec: {0}")]
    Generate(#[from] GenerateError),
    /// The spec could not be written at startup.
    #[error(transparent)]
    WriteSpec(#[from] cdi::write::WriteError),
    /// inotify failed.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// A resource's socket could not be served.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The kubelet refused a registration.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// A signal handler could not be installed.
    #[error("cannot handle {signal}: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The failure.
        source: io::Error,
    },
}

/// The spec the plugin writes: index names for people (`amd.com/gpu=0`), pci names for the
/// kubelet (the device ids), and `all`.
fn generate_options(options: &PluginOptions) -> GenerateOptions {
    GenerateOptions {
        strategies: vec![NameStrategy::Index, NameStrategy::Pci],
        exclude_integrated: options.exclude_integrated,
        dev_root: options.discover.dev_root.clone(),
        ..GenerateOptions::default()
    }
}

/// What the plugin advertises of `host`: its GPUs (every one, or with `--exclude-integrated` the
/// discrete ones, numbered as the spec numbers them) and their devices.
fn advertised(options: &PluginOptions, host: Host) -> Result<(Host, Inventory), InventoryError> {
    let host = if options.exclude_integrated {
        host.without_integrated()
    } else {
        host
    };
    let dev_root = &options.discover.dev_root;
    let inventory = Inventory::build(&host, options.strategy, &|node: &Path| {
        node_exists(dev_root, node)
    })?;
    Ok((host, inventory))
}

/// Writes `spec` as `generate` writes it, with the options on its first line, so that `check`
/// and `doctor` judge the plugin's spec by the options it was made with.
fn write_spec(
    options: &PluginOptions,
    spec: &Spec,
) -> Result<WriteOutcome, cdi::write::WriteError> {
    let text = to_text(spec, &generate_options(options), Format::Yaml);
    cdi::write::write_spec_text(&options.spec_path(), &text)
}

/// Discovers the host, writes its spec and returns what to advertise; any failure is an error.
fn first_snapshot(options: &PluginOptions) -> Result<Snapshot, PluginError> {
    if looks_like_wsl(&options.discover) {
        return Err(PluginError::Wsl);
    }
    let discovery = discover_with(&options.discover, &RealSysfs)?;
    for warning in &discovery.warnings {
        log::warning(warning);
    }
    let (host, inventory) = advertised(options, discovery.host)?;
    let spec = generate(&host, &generate_options(options))?;
    write_spec(options, &spec)?;
    Ok(Snapshot { inventory, spec })
}

/// Marks unhealthy every device the spec does not define.
fn only_specified(mut inventory: Inventory, spec: &Spec) -> Inventory {
    let names: BTreeSet<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    for device in &mut inventory.devices {
        if !names.contains(device.id.as_str()) {
            device.healthy = false;
        }
    }
    inventory
}

/// Discovers the host again after a change. Nothing here stops the plugin: when the host
/// cannot be discovered or advertised, every device becomes unhealthy until it can.
fn rescan(options: &PluginOptions, current: &Snapshot) -> Snapshot {
    let unhealthy = |why: &dyn std::error::Error| {
        log::error(&format!(
            "{}; every device is unhealthy until this is fixed",
            error_line(why)
        ));
        Snapshot {
            inventory: current.inventory.all_unhealthy(),
            spec: current.spec.clone(),
        }
    };
    let scanned = discover_with(&options.discover, &RealSysfs)
        .map_err(PluginError::from)
        .and_then(|discovery| Ok(advertised(options, discovery.host)?));
    let (host, inventory) = match scanned {
        Ok((host, inventory)) => (host, inventory.keeping_vanished(&current.inventory)),
        Err(error) => return unhealthy(&error),
    };
    let spec = match generate(&host, &generate_options(options)) {
        Ok(spec) => match write_spec(options, &spec) {
            Ok(_) => spec,
            Err(error) => {
                log::error(&format!(
                    "{}; keeping the previous spec",
                    error_line(&error)
                ));
                current.spec.clone()
            }
        },
        Err(error) => {
            log::error(&format!("cannot generate the CDI spec: {error}"));
            current.spec.clone()
        }
    };
    Snapshot {
        inventory: only_specified(inventory, &spec),
        spec,
    }
}

/// One line per device that appeared, went, or changed health.
fn log_changes(before: &Inventory, after: &Inventory) {
    for device in &after.devices {
        let old = before.get(&device.resource, &device.id);
        let state = if device.healthy {
            "healthy"
        } else {
            "unhealthy"
        };
        match old {
            None => log::info(&format!(
                "new device {} ({}), {state}",
                device.id, device.resource
            )),
            Some(old) if old.healthy != device.healthy => {
                log::info(&format!("{} ({}) is {state}", device.id, device.resource));
            }
            Some(_) => {}
        }
    }
    for device in &before.devices {
        if after.get(&device.resource, &device.id).is_none() {
            log::info(&format!(
                "device {} ({}) is gone",
                device.id, device.resource
            ));
        }
    }
}

/// A summary such as `amd.com/gpu: 8 devices, amd.com/cpx_nps1: 56 devices`.
fn summary(inventory: &Inventory) -> String {
    inventory
        .resources()
        .iter()
        .map(|r| format!("{r}: {} devices", inventory.of_resource(r).count()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The identity of `kubelet.sock`, to notice that the kubelet recreated it.
fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    path.symlink_metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// The running plugin.
struct Plugin {
    options: PluginOptions,
    snapshots: watch::Sender<Arc<Snapshot>>,
    servers: BTreeMap<String, Server>,
    /// Resources the current kubelet accepted.
    registered: BTreeSet<String>,
    /// The `kubelet.sock` those registrations went to.
    kubelet: Option<(u64, u64)>,
    /// When to try the registrations again, and the wait after that.
    retry_at: Option<Instant>,
    retry_delay: Duration,
    /// Whether "waiting for the kubelet" was said since the last success.
    waiting_logged: bool,
}

impl Plugin {
    /// Starts a server for every resource without one.
    fn start_servers(&mut self) -> Result<(), PluginError> {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        for resource in snapshot.inventory.resources() {
            if self.servers.contains_key(resource) {
                continue;
            }
            let socket = self.options.device_plugin_dir.join(socket_name(resource));
            let server = Server::start(
                resource,
                &socket,
                self.snapshots.subscribe(),
                self.options.allocation,
            )?;
            log::info(&format!("serving {resource} on {}", socket.display()));
            self.servers.insert(resource.to_string(), server);
        }
        Ok(())
    }

    /// Registers every served resource the current kubelet does not have yet. A kubelet that
    /// does not answer is tried again later (or when its socket appears); a refusal is fatal.
    async fn register_pending(&mut self) -> Result<(), PluginError> {
        let kubelet_socket = self.options.kubelet_socket();
        let identity = socket_identity(&kubelet_socket);
        if identity != self.kubelet {
            self.registered.clear();
            self.kubelet = identity;
        }
        self.retry_at = None;
        if identity.is_none() {
            if !self.waiting_logged {
                log::info(&format!(
                    "waiting for the kubelet to create {}",
                    kubelet_socket.display()
                ));
                self.waiting_logged = true;
            }
            return Ok(());
        }
        let pending: Vec<(String, String)> = self
            .servers
            .values()
            .filter(|s| !self.registered.contains(&s.resource))
            .map(|s| (s.resource.clone(), socket_name(&s.resource)))
            .collect();
        for (resource, endpoint) in pending {
            match register(&kubelet_socket, &endpoint, &resource).await {
                Ok(()) => {
                    log::info(&format!("registered {resource} with the kubelet"));
                    self.registered.insert(resource);
                    self.retry_delay = Duration::from_secs(1);
                    self.waiting_logged = false;
                }
                Err(error) if error.is_transient() => {
                    if !self.waiting_logged {
                        log::error(&format!("{error}; trying again"));
                        self.waiting_logged = true;
                    }
                    self.retry_at = Some(Instant::now() + self.retry_delay);
                    self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY);
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// After the kubelet restarted or a socket went: serves again on every socket that is
    /// gone, then registers again.
    async fn reconnect(&mut self) -> Result<(), PluginError> {
        let gone: Vec<String> = self
            .servers
            .values()
            .filter(|s| !s.socket_exists())
            .map(|s| s.resource.clone())
            .collect();
        for resource in gone {
            if let Some(server) = self.servers.remove(&resource) {
                server.stop().await;
            }
            self.registered.remove(&resource);
        }
        self.start_servers()?;
        self.register_pending().await
    }

    /// Rediscovers and advertises the result.
    async fn refresh(&mut self) -> Result<(), PluginError> {
        let current = Arc::clone(&self.snapshots.borrow());
        let next = rescan(&self.options, &current);
        if next != *current {
            log_changes(&current.inventory, &next.inventory);
            self.snapshots.send_replace(Arc::new(next));
        }
        self.start_servers()?;
        self.register_pending().await
    }

    /// Stops every server and removes its socket.
    async fn shutdown(&mut self) {
        for (_, server) in std::mem::take(&mut self.servers) {
            server.stop().await;
        }
    }
}

/// Runs the plugin until SIGTERM or SIGINT.
pub async fn run(options: PluginOptions) -> Result<(), PluginError> {
    let dirs = [
        (
            &options.device_plugin_dir,
            "is the kubelet running? mount its device plugin directory into the pod",
        ),
        (
            &options.dev_dir(),
            "point --dev-root at the directory holding the host's dev/",
        ),
    ];
    for (path, hint) in dirs {
        if !path.is_dir() {
            return Err(PluginError::MissingDir {
                path: path.to_path_buf(),
                hint,
            });
        }
    }
    let handler = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| PluginError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = handler(SignalKind::interrupt(), "SIGINT")?;
    let mut hangup = handler(SignalKind::hangup(), "SIGHUP")?;
    // Watch before the first discovery, so no change in between is missed.
    let mut watcher = Watcher::new(&options.dev_dir(), &options.device_plugin_dir)?;
    let snapshot = first_snapshot(&options)?;
    log::info(&format!(
        "wrote {}; advertising {}",
        options.spec_path().display(),
        summary(&snapshot.inventory)
    ));
    let (snapshots, _) = watch::channel(Arc::new(snapshot));
    let mut plugin = Plugin {
        options,
        snapshots,
        servers: BTreeMap::new(),
        registered: BTreeSet::new(),
        kubelet: None,
        retry_at: None,
        retry_delay: Duration::from_secs(1),
        waiting_logged: false,
    };
    let result = serve(
        &mut plugin,
        &mut watcher,
        [&mut terminate, &mut interrupt],
        &mut hangup,
    )
    .await;
    plugin.shutdown().await;
    if result.is_ok() {
        log::info("stopped");
    }
    result
}

/// The event loop.
async fn serve(
    plugin: &mut Plugin,
    watcher: &mut Watcher,
    [terminate, interrupt]: [&mut tokio::signal::unix::Signal; 2],
    hangup: &mut tokio::signal::unix::Signal,
) -> Result<(), PluginError> {
    plugin.start_servers()?;
    plugin.register_pending().await?;
    let mut devices_due: Option<Instant> = None;
    let mut kubelet_due: Option<Instant> = None;
    loop {
        let deadline = [devices_due, kubelet_due, plugin.retry_at]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = hangup.recv() => {
                log::info("SIGHUP: discovering again");
                devices_due = Some(Instant::now());
            }
            changes = watcher.next() => {
                for change in changes? {
                    let due = match change {
                        WatchEvent::Devices => &mut devices_due,
                        WatchEvent::Kubelet => &mut kubelet_due,
                    };
                    due.get_or_insert_with(|| Instant::now() + SETTLE);
                }
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let now = Instant::now();
                if devices_due.is_some_and(|due| due <= now) {
                    devices_due = None;
                    plugin.refresh().await?;
                }
                if kubelet_due.is_some_and(|due| due <= now) {
                    kubelet_due = None;
                    plugin.reconnect().await?;
                }
                if plugin.retry_at.is_some_and(|due| due <= now) {
                    plugin.register_pending().await?;
                }
            }
        }
    }
}
