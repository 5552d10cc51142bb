//! The kubelet side: registering a resource through the kubelet's `Registration` service on
//! `kubelet.sock`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::registration::registration_client::RegistrationClient;
use crate::api::{RegisterRequest, VERSION};
use crate::server::plugin_options;

/// How long one registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The kubelet's socket does not answer (no kubelet, or a stale socket).
    #[error("cannot reach the kubelet at {}: {reason}", socket.display())]
    Unreachable {
        /// `kubelet.sock`.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The kubelet refused the registration.
    #[error("the kubelet refused to register {resource}: {message}")]
    Refused {
        /// The resource.
        resource: String,
        /// The kubelet's reason.
        message: String,
    },
}

impl RegisterError {
    /// Whether trying again later can help (the kubelet may come up); a refusal is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// A gRPC channel over a unix socket.
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is required by the HTTP/2 layer but never used: the connector dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(REGISTER_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
}

/// Registers `resource`, served on `endpoint` (a socket name in the device plugin directory),
/// with the kubelet listening on `kubelet_socket`.
pub async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource: &str,
) -> Result<(), RegisterError> {
    let unreachable = |reason: String| RegisterError::Unreachable {
        socket: kubelet_socket.to_path_buf(),
        reason,
    };
    let call = async {
        let channel = connect(kubelet_socket)
            .await
            .map_err(|error| unreachable(describe(&error)))?;
        let request = RegisterRequest {
            version: VERSION.to_string(),
            endpoint: endpoint.to_string(),
            resource_name: resource.to_string(),
            options: Some(plugin_options()),
        };
        match RegistrationClient::new(channel).register(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                Err(unreachable(status.message().to_string()))
            }
            Err(status) => Err(RegisterError::Refused {
                resource: resource.to_string(),
                message: status.message().to_string(),
            }),
        }
    };
    tokio::time::timeout(REGISTER_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(unreachable("no answer within 10 seconds".to_string())))
}

/// A transport error with its causes, lower-case, on one line.
fn describe(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
