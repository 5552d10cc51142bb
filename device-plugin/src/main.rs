//! `amdgpu-cdi-device-plugin`: the kubelet device plugin (`amdgpu-cdi device-plugin` execs it).
//! Argument parsing and error reporting only; the plugin lives in the library.

use std::process::ExitCode;

use amdgpu_cdi::cli::device_plugin::DevicePluginArgs;
use amdgpu_cdi::error_text::error_line;
use amdgpu_cdi_device_plugin::options::PluginOptions;
use amdgpu_cdi_device_plugin::plugin;

/// Kubernetes device plugin for AMD GPUs: advertises GPUs and compute partitions to the kubelet
/// and hands them out as CDI devices. Runs until SIGTERM.
#[derive(Debug, clap::Parser)]
#[command(name = "amdgpu-cdi-device-plugin", version, about, long_about = None)]
struct PluginCli {
    #[command(flatten)]
    args: DevicePluginArgs,
}

fn main() -> ExitCode {
    let cli = <PluginCli as clap::Parser>::parse();
    let options = PluginOptions::from(&cli.args);
    // One thread: the plugin waits for events almost all the time, and a single-threaded
    // runtime keeps its memory and wake-ups small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "amdgpu-cdi-device-plugin: cannot start the async runtime: {}",
                error_line(&error)
            );
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(plugin::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("amdgpu-cdi-device-plugin: {}", error_line(&error));
            ExitCode::from(2)
        }
    }
}
