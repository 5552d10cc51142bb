//! PCI addresses: the one parser and formatter (sysfs names them, users write them in requests,
//! with or without the domain). Pure text; the scan's PCI reading is in [`super::pci`].

use std::fmt;
use std::str::FromStr;

/// A PCI address `domain:bus:device.function`, e.g. `0000:03:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// `addresses` in one comma-separated line, as error messages list them:
/// `0000:03:00.0, 0000:83:00.0`.
pub(super) fn comma_separated(addresses: &[PciAddress]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string that is not a `domain:bus:device.function` PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PCI address (expected domain:bus:device.function, e.g. 0000:03:00.0)")]
pub struct ParsePciAddressError(pub String);

impl FromStr for PciAddress {
    type Err = ParsePciAddressError;

    /// [`PciSelector::parse`] with the domain required.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PciSelector::parse(s)
            .and_then(|selector| selector.address())
            .ok_or_else(|| ParsePciAddressError(s.to_string()))
    }
}

/// A PCI address as a request writes it: `0000:03:00.0`, or `03:00.0` without the domain, which
/// matches that bus, device and function in any domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciSelector {
    /// The domain, when written.
    pub domain: Option<u32>,
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
}

impl PciSelector {
    /// Parses `domain:bus:device.function` or `bus:device.function`: hex digits only, at most 8
    /// for the domain, 2 for the bus and the device, 1 for the function; device below 32,
    /// function below 8. `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (first, rest) = text.split_once(':')?;
        let (domain, bus, rest) = match rest.split_once(':') {
            Some((bus, rest)) => (Some(hex_field(first, 8)?), bus, rest),
            None => (None, first, rest),
        };
        let (device, function) = rest.split_once('.')?;
        let selector = Self {
            domain,
            bus: u8::try_from(hex_field(bus, 2)?).ok()?,
            device: u8::try_from(hex_field(device, 2)?).ok()?,
            function: u8::try_from(hex_field(function, 1)?).ok()?,
        };
        (selector.device < 32 && selector.function < 8).then_some(selector)
    }

    /// True when `address` is this one (any domain for the short form).
    pub fn matches(&self, address: &PciAddress) -> bool {
        self.domain.is_none_or(|d| d == address.domain)
            && self.bus == address.bus
            && self.device == address.device
            && self.function == address.function
    }

    /// The address, when the domain was written.
    pub fn address(&self) -> Option<PciAddress> {
        self.domain.map(|domain| PciAddress {
            domain,
            bus: self.bus,
            device: self.device,
            function: self.function,
        })
    }
}

impl fmt::Display for PciSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address() {
            Some(address) => address.fmt(f),
            None => write!(
                f,
                "{:02x}:{:02x}.{:x}",
                self.bus, self.device, self.function
            ),
        }
    }
}

/// One to `max_len` hex digits (no sign, no prefix).
fn hex_field(text: &str, max_len: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_print_back() {
        let long = PciSelector::parse("0001:c1:1f.7").expect("long form");
        assert_eq!(
            long.address(),
            Some(PciAddress {
                domain: 1,
                bus: 0xc1,
                device: 0x1f,
                function: 7
            })
        );
        assert_eq!(long.to_string(), "0001:c1:1f.7");
        let short = PciSelector::parse("03:00.1").expect("short form");
        assert_eq!((short.domain, short.address()), (None, None));
        assert_eq!(short.to_string(), "03:00.1");
        assert!(short.matches(&"0002:03:00.1".parse().expect("address")));
        assert!(!short.matches(&"0002:03:00.0".parse().expect("address")));
    }

    #[test]
    fn only_hex_digits_are_fields() {
        for bad in [
            "+000:03:00.0",
            "0000:+3:00.0",
            "0000:03:00.+",
            "0x0:03:00.0",
            "0000:03:00.0 ",
            "0000:03:00.0.0",
            "1:2:3:4.0",
            ":03:00.0",
            "03:.0",
        ] {
            assert_eq!(PciSelector::parse(bad), None, "{bad:?}");
            assert!(bad.parse::<PciAddress>().is_err(), "{bad:?}");
        }
    }
}
