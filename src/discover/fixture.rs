//! Hand-made GPUs for the unit tests of what consumes discovery (naming, generate): one MI300X
//! partition or whole GPU, without reading a host.

use std::path::PathBuf;

use super::{FoundNode, Gpu, Partition, PciAddress};

/// A node at `path`; one with a group (`gid`) exists under the dev root, with mode 0660.
pub(crate) fn node(path: &str, major: u32, minor: u32, gid: Option<u32>) -> FoundNode {
    FoundNode {
        path: PathBuf::from(path),
        major,
        minor,
        gid,
        file_mode: gid.map(|_| 0o660),
    }
}

/// GPU `index` at PCI `0000:<bus>:00.0`, partition `partition` of two (DPX) when given, with
/// render node `renderD<128 + index>` and card node `card<1 + index>`.
pub(crate) fn gpu(index: usize, bus: u8, partition: Option<u32>, unique_id: Option<u64>) -> Gpu {
    let minor = 128 + u32::try_from(index).expect("small index");
    Gpu {
        index,
        pci_address: PciAddress {
            domain: 0,
            bus,
            device: 0,
            function: 0,
        },
        partition: partition.map(|index| Partition {
            index,
            count: 2,
            compute_mode: "DPX".into(),
            memory_mode: Some("NPS1".into()),
        }),
        kfd_node: u32::try_from(index).expect("small index") + 1,
        gpu_id: 4242,
        unique_id,
        hive_id: None,
        vendor_id: 0x1002,
        device_id: 0x74a1,
        gfx_target_version: Some(90402),
        render: node(&format!("/dev/dri/renderD{minor}"), 226, minor, Some(992)),
        card: Some(node(
            &format!("/dev/dri/card{}", minor - 127),
            226,
            minor - 127,
            Some(44),
        )),
        numa_node: Some(0),
        product_name: Some("AMD Instinct MI300X".into()),
        integrated: false,
        compute_partition: partition.map(|_| "DPX".into()),
        memory_partition: partition.map(|_| "NPS1".into()),
    }
}
