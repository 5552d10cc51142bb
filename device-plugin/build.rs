//! Generates the tonic client and server code of the kubelet Device Plugin API `v1beta1` from the
//! service definitions below, without protoc or a `.proto` file: the messages are written by hand
//! in `src/api.rs` (prost derives), and tonic-build's manual builder turns these definitions into
//! `v1beta1.Registration.rs` and `v1beta1.DevicePlugin.rs` in `OUT_DIR`. Service, package and
//! method names are the wire contract (`/v1beta1.DevicePlugin/Allocate`), so they are spelled
//! as the published API spells them.

use tonic_build::manual::{Builder, Method, Service};

const CODEC: &str = "tonic_prost::ProstCodec";

fn method(
    name: &str,
    route: &str,
    input: &str,
    output: &str,
) -> tonic_build::manual::MethodBuilder {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::api::{input}"))
        .output_type(format!("crate::api::{output}"))
        .codec_path(CODEC)
}

fn main() {
    let registration = Service::builder()
        .name("Registration")
        .package("v1beta1")
        .comment("The kubelet's service: device plugins register their resource with it.")
        .method(
            method("register", "Register", "RegisterRequest", "Empty")
                .comment("Registers a device plugin's socket and resource name.")
                .build(),
        )
        .build();
    let device_plugin = Service::builder()
        .name("DevicePlugin")
        .package("v1beta1")
        .comment("A device plugin's service, called by the kubelet.")
        .method(
            method(
                "get_device_plugin_options",
                "GetDevicePluginOptions",
                "Empty",
                "DevicePluginOptions",
            )
            .comment("The plugin's options.")
            .build(),
        )
        .method(
            method(
                "list_and_watch",
                "ListAndWatch",
                "Empty",
                "ListAndWatchResponse",
            )
            .comment("The device list, sent again whenever a device or its health changes.")
            .server_streaming()
            .build(),
        )
        .method(
            method(
                "get_preferred_allocation",
                "GetPreferredAllocation",
                "PreferredAllocationRequest",
                "PreferredAllocationResponse",
            )
            .comment("The devices the plugin prefers for a request, out of the available ones.")
            .build(),
        )
        .method(
            method(
                "allocate",
                "Allocate",
                "AllocateRequest",
                "AllocateResponse",
            )
            .comment("What a container needs to use the allocated devices.")
            .build(),
        )
        .method(
            method(
                "pre_start_container",
                "PreStartContainer",
                "PreStartContainerRequest",
                "PreStartContainerResponse",
            )
            .comment("Called before each container start when the plugin asks for it.")
            .build(),
        )
        .build();
    Builder::new()
        .build_transport(false)
        .compile(&[registration, device_plugin]);
    println!("cargo::rerun-if-changed=build.rs");
}
