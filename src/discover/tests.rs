//! Unit tests of discovery helpers; whole-host behaviour is tested against `examples/hosts`.

use super::*;

#[test]
fn pci_address_round_trips() {
    let address: PciAddress = "0001:c1:1f.7".parse().expect("valid address");
    assert_eq!(
        address,
        PciAddress {
            domain: 1,
            bus: 0xc1,
            device: 0x1f,
            function: 7
        }
    );
    assert_eq!(address.to_string(), "0001:c1:1f.7");
    for bad in [
        "",
        "03:00.0",
        "0000:03:00",
        "0000:03:20.0",
        "0000:03:00.8",
        "0000:x3:00.0",
    ] {
        assert!(bad.parse::<PciAddress>().is_err(), "{bad} parsed");
    }
}

#[test]
fn xcp_device_names_in_both_spellings() {
    assert!(is_xcp_device("amdgpu_xcp_12"));
    assert!(is_xcp_device("amdgpu_xcp.3"));
    assert!(!is_xcp_device("amdgpu_xcp"));
    assert!(!is_xcp_device("amdgpu_xcp_"));
    assert!(!is_xcp_device("amdgpu_xcpx1"));
    assert!(!is_xcp_device("0000:03:00.0"));
}

#[test]
fn io_errors_read_lower_case_with_a_hint_for_eperm() {
    let eperm = io::Error::from_raw_os_error(nix::libc::EPERM);
    assert_eq!(
        describe_io(&eperm),
        "operation not permitted (is this running inside a restricted container?)"
    );
    let enoent = io::Error::from_raw_os_error(nix::libc::ENOENT);
    assert_eq!(describe_io(&enoent), "no such file or directory");
}
