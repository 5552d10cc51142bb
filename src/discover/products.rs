//! What sysfs does not say about some GPUs, by PCI device id: which are integrated (APUs), and
//! the names of those without a `product_name`.

/// Integrated GPUs (APUs) by PCI device id: KFD reports CPU cores on an APU's GPU node only on
/// some kernels, so a short list of APU device ids fills the gap. Only used for display.
pub(super) fn is_apu(device_id: u16) -> bool {
    matches!(
        device_id,
        0x15bf
            | 0x15c8
            | 0x164e
            | 0x1681
            | 0x1636
            | 0x1638
            | 0x164c
            | 0x15e7
            | 0x150e
            | 0x1900
            | 0x74a0
    )
}

/// Names for GPUs whose sysfs has no `product_name` (consumer cards and APUs).
pub(super) fn known_product(device_id: u16) -> Option<&'static str> {
    Some(match device_id {
        0x744c => "Radeon RX 7900 XT/7900 XTX (Navi 31)",
        0x15bf => "Radeon 780M/760M (Phoenix)",
        0x164e => "Radeon Graphics (Raphael)",
        0x7448 => "Radeon PRO W7900",
        0x66a1 => "Instinct MI50/MI60 (Vega 20)",
        0x740f => "Instinct MI210",
        0x74a1 => "Instinct MI300X",
        0x74a0 => "Instinct MI300A",
        _ => return None,
    })
}
