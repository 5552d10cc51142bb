//! The `DevicePlugin` service of one resource, served on its own unix socket in the device
//! plugin directory. Every resource's service reads the same [`Snapshot`] (inventory and spec)
//! through a watch channel, so a rescan reaches every `ListAndWatch` stream at once.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cdi::spec::Spec;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use crate::allocate::{AllocationForm, container_response};
use crate::api::device_plugin::device_plugin_server::{DevicePlugin, DevicePluginServer};
use crate::api::{
    AllocateRequest, AllocateResponse, ContainerPreferredAllocationResponse, Device,
    DevicePluginOptions, Empty, HEALTHY, ListAndWatchResponse, NumaNode, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
    TopologyInfo, UNHEALTHY,
};
use crate::inventory::{Inventory, PluginDevice};
use crate::log;
use crate::policy::preferred;

/// What every service answers from: the devices and the spec their CDI names resolve against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The advertised devices.
    pub inventory: Inventory,
    /// The spec on disk.
    pub spec: Spec,
}

/// The options every resource registers with.
pub fn plugin_options() -> DevicePluginOptions {
    DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}

/// The `ListAndWatch` form of one device.
fn device_message(device: &PluginDevice) -> Device {
    Device {
        id: device.id.clone(),
        health: if device.healthy { HEALTHY } else { UNHEALTHY }.to_string(),
        topology: device.numa_node.map(|node| TopologyInfo {
            nodes: vec![NumaNode {
                id: i64::from(node),
            }],
        }),
    }
}

/// The device list of `resource` in `snapshot`.
pub fn device_list(snapshot: &Snapshot, resource: &str) -> ListAndWatchResponse {
    ListAndWatchResponse {
        devices: snapshot
            .inventory
            .of_resource(resource)
            .map(device_message)
            .collect(),
    }
}

/// The `DevicePlugin` service of one resource.
pub struct ResourceService {
    resource: String,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    form: AllocationForm,
    /// Becomes true when the server stops; ends the `ListAndWatch` streams.
    stop: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl DevicePlugin for ResourceService {
    async fn get_device_plugin_options(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(plugin_options()))
    }

    type ListAndWatchStream = ReceiverStream<Result<ListAndWatchResponse, Status>>;

    async fn list_and_watch(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let (sender, receiver) = mpsc::channel(4);
        let mut snapshots = self.snapshots.clone();
        let mut stop = self.stop.clone();
        let resource = self.resource.clone();
        tokio::spawn(async move {
            let mut last: Option<ListAndWatchResponse> = None;
            loop {
                let list = device_list(&snapshots.borrow_and_update(), &resource);
                if last.as_ref() != Some(&list) {
                    if sender.send(Ok(list.clone())).await.is_err() {
                        return;
                    }
                    last = Some(list);
                }
                tokio::select! {
                    changed = snapshots.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let mut responses = Vec::new();
        for container in request.into_inner().container_requests {
            let size = usize::try_from(container.allocation_size).map_err(|_| {
                Status::invalid_argument(format!(
                    "allocation size {} of {} is negative",
                    container.allocation_size, self.resource
                ))
            })?;
            let device_ids = preferred(
                snapshot.inventory.of_resource(&self.resource),
                &container.available_device_ids,
                &container.must_include_device_ids,
                size,
            );
            responses.push(ContainerPreferredAllocationResponse { device_ids });
        }
        Ok(Response::new(PreferredAllocationResponse {
            container_responses: responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let mut responses = Vec::new();
        for container in request.into_inner().container_requests {
            match container_response(
                &snapshot.inventory,
                &snapshot.spec,
                &self.resource,
                &container.devices_ids,
                self.form,
            ) {
                Ok(response) => {
                    log::info(&format!(
                        "allocated {} of {}",
                        container.devices_ids.join(","),
                        self.resource
                    ));
                    responses.push(response);
                }
                Err(error) => {
                    log::error(&error.to_string());
                    return Err(Status::invalid_argument(error.to_string()));
                }
            }
        }
        Ok(Response::new(AllocateResponse {
            container_responses: responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _request: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket path is taken by something that is not a socket.
    #[error(
        "cannot serve {resource} on {}: the path exists and is not a socket (remove it)",
        path.display()
    )]
    NotASocket {
        /// The resource.
        resource: String,
        /// The socket path.
        path: PathBuf,
    },
    /// Binding the socket failed.
    #[error("cannot serve {resource} on {}: {source}", path.display())]
    Bind {
        /// The resource.
        resource: String,
        /// The socket path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// A running server of one resource.
pub struct Server {
    /// The resource.
    pub resource: String,
    /// The socket.
    pub socket: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `socket` (replacing a stale socket file there) and serves `resource` on it.
    pub fn start(
        resource: &str,
        socket: &Path,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        form: AllocationForm,
    ) -> Result<Self, ServeError> {
        match socket.symlink_metadata() {
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
                remove_socket(socket);
            }
            Ok(_) => {
                return Err(ServeError::NotASocket {
                    resource: resource.to_string(),
                    path: socket.to_path_buf(),
                });
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(socket).map_err(|source| ServeError::Bind {
            resource: resource.to_string(),
            path: socket.to_path_buf(),
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let service = ResourceService {
            resource: resource.to_string(),
            snapshots,
            form,
            stop: stopped.clone(),
        };
        let incoming = UnixListenerStream::new(listener);
        let label = format!("{resource} on {}", socket.display());
        let mut until_stopped = stopped;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = until_stopped.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(DevicePluginServer::new(service), incoming, shutdown)
                .await
            {
                log::error(&format!("serving {label} failed: {error}"));
            }
        });
        Ok(Self {
            resource: resource.to_string(),
            socket: socket.to_path_buf(),
            stop,
            task,
        })
    }

    /// Whether the server's socket file is still there (the kubelet removes the plugins'
    /// sockets when it restarts).
    pub fn socket_exists(&self) -> bool {
        self.socket.symlink_metadata().is_ok()
    }

    /// Ends the `ListAndWatch` streams, stops serving (waiting at most two seconds for open
    /// calls) and removes the socket.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        remove_socket(&self.socket);
    }
}

/// Removes a socket file, if it is one.
fn remove_socket(path: &Path) {
    if let Ok(meta) = path.symlink_metadata()
        && std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
        && let Err(error) = std::fs::remove_file(path)
    {
        log::error(&format!("cannot remove {}: {error}", path.display()));
    }
}

#[cfg(test)]
mod tests;
