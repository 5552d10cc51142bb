//! The services over real unix sockets and gRPC: a resource's server, driven by the generated
//! client, and registration against a fake kubelet `Registration` service.

use std::path::Path;
use std::sync::{Arc, Mutex};

use amdgpu_cdi::generate::{GenerateOptions, generate};
use amdgpu_cdi::naming::NameStrategy;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::{Server, Snapshot};
use crate::allocate::AllocationForm;
use crate::api::device_plugin::device_plugin_client::DevicePluginClient;
use crate::api::registration::registration_server::{Registration, RegistrationServer};
use crate::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty,
    PreferredAllocationRequest, RegisterRequest,
};
use crate::inventory::ResourceStrategy;
use crate::kubelet::{RegisterError, connect, register};
use crate::testing::{example, inventory};

fn snapshot(host: &str, strategy: ResourceStrategy) -> Snapshot {
    let options = GenerateOptions {
        strategies: vec![NameStrategy::Index, NameStrategy::Pci],
        ..GenerateOptions::default()
    };
    Snapshot {
        inventory: inventory(host, strategy),
        spec: generate(&example(host), &options).expect("spec"),
    }
}

async fn client(socket: &Path) -> DevicePluginClient<tonic::transport::Channel> {
    DevicePluginClient::new(connect(socket).await.expect("connect"))
}

#[tokio::test(flavor = "current_thread")]
async fn a_resource_server_answers_every_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("amdgpu-cdi-cpx_nps1.sock");
    let (snapshots, receiver) =
        watch::channel(Arc::new(snapshot("mi300x-cpx", ResourceStrategy::Mixed)));
    let server = Server::start("amd.com/cpx_nps1", &socket, receiver, AllocationForm::Cdi)
        .expect("server starts");
    let mut client = client(&socket).await;

    let options = client
        .get_device_plugin_options(Empty {})
        .await
        .expect("options")
        .into_inner();
    assert!(options.get_preferred_allocation_available);
    assert!(!options.pre_start_required);

    let mut stream = client
        .list_and_watch(Empty {})
        .await
        .expect("ListAndWatch")
        .into_inner();
    let first = stream
        .next()
        .await
        .expect("stream item")
        .expect("stream item");
    assert_eq!(first.devices.len(), 64);
    assert_eq!(first.devices[0].id, "0000:05:00.0-p0");
    assert_eq!(first.devices[0].health, "Healthy");
    assert_eq!(
        first.devices[0].topology.as_ref().expect("topology").nodes[0].id,
        0
    );
    assert_eq!(
        first.devices[63].topology.as_ref().expect("topology").nodes[0].id,
        1
    );

    // A health change reaches the stream.
    let mut changed = (**snapshots.borrow()).clone();
    changed.inventory.devices[5].healthy = false;
    snapshots.send_replace(Arc::new(changed));
    let second = stream
        .next()
        .await
        .expect("stream item")
        .expect("stream item");
    assert_eq!(second.devices[5].health, "Unhealthy");

    let preferred = client
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_ids: first.devices.iter().map(|d| d.id.clone()).collect(),
                must_include_device_ids: vec![],
                allocation_size: 3,
            }],
        })
        .await
        .expect("GetPreferredAllocation")
        .into_inner();
    assert_eq!(
        preferred.container_responses[0].device_ids,
        ["0000:05:00.0-p0", "0000:05:00.0-p1", "0000:05:00.0-p2"]
    );

    let allocated = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:15:00.0-p1".into()],
            }],
        })
        .await
        .expect("Allocate")
        .into_inner();
    assert_eq!(
        allocated.container_responses[0].cdi_devices[0].name,
        "amd.com/gpu=0000:15:00.0-p1"
    );
    let refused = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:05:00.0-p5".into()],
            }],
        })
        .await
        .expect_err("must fail");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("0000:05:00.0-p5"), "{refused:?}");

    // Stopping ends the stream and removes the socket.
    server.stop().await;
    assert!(stream.next().await.is_none_or(|item| item.is_err()));
    assert!(!socket.exists());
}

#[tokio::test(flavor = "current_thread")]
async fn a_socket_path_that_is_not_a_socket_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("amdgpu-cdi-gpu.sock");
    std::fs::write(&path, "").expect("file operation");
    let (_, receiver) = watch::channel(Arc::new(snapshot("mi210x4", ResourceStrategy::Single)));
    let error = Server::start("amd.com/gpu", &path, receiver, AllocationForm::Cdi)
        .err()
        .expect("server starts");
    assert!(
        error
            .to_string()
            .ends_with("the path exists and is not a socket (remove it)"),
        "{error}"
    );
}

/// A kubelet `Registration` service that records requests and refuses one resource name.
#[derive(Default, Clone)]
struct FakeKubelet {
    requests: Arc<Mutex<Vec<RegisterRequest>>>,
}

#[tonic::async_trait]
impl Registration for FakeKubelet {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        if request.resource_name == "amd.com/refused" {
            return Err(Status::invalid_argument("resource name is taken"));
        }
        self.requests.lock().expect("lock").push(request);
        Ok(Response::new(Empty {}))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn registration_sends_the_resource_and_reports_refusals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("kubelet.sock");
    let missing = register(&socket, "amdgpu-cdi-gpu.sock", "amd.com/gpu")
        .await
        .expect_err("must fail");
    assert!(missing.is_transient());
    assert!(
        missing
            .to_string()
            .starts_with(&format!("cannot reach the kubelet at {}", socket.display())),
        "{missing}"
    );

    let kubelet = FakeKubelet::default();
    let incoming = UnixListenerStream::new(UnixListener::bind(&socket).expect("bind"));
    let service = RegistrationServer::new(kubelet.clone());
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(service, incoming));
    register(&socket, "amdgpu-cdi-gpu.sock", "amd.com/gpu")
        .await
        .expect("registration");
    let requests = kubelet.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].version, "v1beta1");
    assert_eq!(requests[0].endpoint, "amdgpu-cdi-gpu.sock");
    assert_eq!(requests[0].resource_name, "amd.com/gpu");
    assert!(
        requests[0]
            .options
            .as_ref()
            .expect("options sent")
            .get_preferred_allocation_available
    );

    let refused = register(&socket, "amdgpu-cdi-refused.sock", "amd.com/refused")
        .await
        .expect_err("must fail");
    assert!(matches!(refused, RegisterError::Refused { .. }));
    assert_eq!(
        refused.to_string(),
        "the kubelet refused to register amd.com/refused: resource name is taken"
    );
}
