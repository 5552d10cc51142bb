//! Device cgroup rules and the eBPF program that enforces them on cgroup v2.
//!
//! An eBPF device program cannot be extended or called from another program, so the hook
//! rebuilds the whole policy: the OCI `linux.resources.devices` rules the runtime turned into its
//! own program, the runtime's implicit defaults, and the new GPU nodes. The rules are first
//! reduced like the cgroup v1 devices controller (and runc's emulator) does - a wildcard rule
//! resets the default, other rules add or remove exceptions - and the result is compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program: match an exception, return the opposite of the default.

use std::collections::HashMap;
use std::fmt;

/// Access bits as the kernel passes them to device programs (`BPF_DEVCG_ACC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access(u8);

impl Access {
    /// `m`: mknod.
    pub const MKNOD: Access = Access(1);
    /// `r`: read.
    pub const READ: Access = Access(2);
    /// `w`: write.
    pub const WRITE: Access = Access(4);
    /// `rwm`.
    pub const ALL: Access = Access(7);

    /// Parses an OCI/CDI access string (subset of `rwm`; empty means `rwm`).
    pub fn parse(text: &str) -> Option<Access> {
        if text.is_empty() {
            return Some(Access::ALL);
        }
        let mut bits = 0;
        for c in text.chars() {
            bits |= match c {
                'r' => Access::READ.0,
                'w' => Access::WRITE.0,
                'm' => Access::MKNOD.0,
                _ => return None,
            };
        }
        Some(Access(bits))
    }

    /// The raw bits.
    #[must_use]
    pub fn bits(self) -> u8 {
        self.0
    }

    fn without(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.0 & bit.0 != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The device type a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceType {
    /// `a`: every device (a wildcard rule).
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

impl DeviceType {
    /// Parses `a`, `c`, `b` (OCI: empty means `a`).
    #[must_use]
    pub fn parse(text: &str) -> Option<DeviceType> {
        match text {
            "" | "a" => Some(DeviceType::All),
            "c" | "u" => Some(DeviceType::Char),
            "b" => Some(DeviceType::Block),
            _ => None,
        }
    }

    fn letter(self) -> char {
        match self {
            DeviceType::All => 'a',
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        }
    }
}

/// One device cgroup rule, as in OCI `linux.resources.devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// Device type.
    pub kind: DeviceType,
    /// Major number; `None` is the wildcard.
    pub major: Option<u32>,
    /// Minor number; `None` is the wildcard.
    pub minor: Option<u32>,
    /// Access.
    pub access: Access,
}

impl DeviceRule {
    /// An `rwm`-style allow rule for one character or block device.
    #[must_use]
    pub fn allow_device(kind: DeviceType, major: u32, minor: u32, access: Access) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major: Some(major),
            minor: Some(minor),
            access,
        }
    }

    /// The text the cgroup v1 `devices.allow`/`devices.deny` files take, e.g. `c 226:128 rwm`.
    #[must_use]
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// runc 1.1's implicit rules, appended after the config's own (`specconv.AllowedDevices`); a
/// default with a path is dropped when `linux.devices` already lists that path.
#[must_use]
pub fn runc_default_rules(config_device_paths: &[&str]) -> Vec<DeviceRule> {
    let c = |major: Option<u32>, minor: Option<u32>, access: Access, path: Option<&str>| {
        (
            path.map(str::to_string),
            DeviceRule {
                allow: true,
                kind: DeviceType::Char,
                major,
                minor,
                access,
            },
        )
    };
    let defaults = [
        c(None, None, Access::MKNOD, None),
        (
            None,
            DeviceRule {
                allow: true,
                kind: DeviceType::Block,
                major: None,
                minor: None,
                access: Access::MKNOD,
            },
        ),
        c(Some(1), Some(3), Access::ALL, Some("/dev/null")),
        c(Some(1), Some(8), Access::ALL, Some("/dev/random")),
        c(Some(1), Some(7), Access::ALL, Some("/dev/full")),
        c(Some(5), Some(0), Access::ALL, Some("/dev/tty")),
        c(Some(1), Some(5), Access::ALL, Some("/dev/zero")),
        c(Some(1), Some(9), Access::ALL, Some("/dev/urandom")),
        c(Some(136), None, Access::ALL, None),
        c(Some(5), Some(2), Access::ALL, None),
        c(Some(10), Some(200), Access::ALL, None),
    ];
    defaults
        .into_iter()
        .filter(|(path, _)| {
            path.as_deref()
                .is_none_or(|p| !config_device_paths.contains(&p))
        })
        .map(|(_, rule)| rule)
        .collect()
}

/// The effective policy after applying rules in order: a default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Whether devices not matching any exception are allowed.
    pub default_allow: bool,
    /// Devices treated opposite to the default (never of type `a`).
    pub exceptions: Vec<DeviceRule>,
}

impl Policy {
    /// Reduces `rules` the way the cgroup v1 devices controller applies them from a deny-all
    /// start: a type-`a` rule resets the default and clears the exceptions; a rule agreeing with
    /// the default removes its access from the identical exception; any other rule adds (or
    /// widens) an exception. Linear in the number of rules: exceptions are found by their
    /// device (type and numbers), as runc's emulator does.
    #[must_use]
    pub fn from_rules(rules: &[DeviceRule]) -> Policy {
        type Device = (DeviceType, Option<u32>, Option<u32>);
        let mut default_allow = false;
        // Exceptions in the order they were first added; an emptied one is `None`.
        let mut slots: Vec<Option<DeviceRule>> = Vec::new();
        let mut index: HashMap<Device, usize> = HashMap::new();
        for rule in rules {
            if rule.kind == DeviceType::All {
                default_allow = rule.allow;
                slots.clear();
                index.clear();
                continue;
            }
            let device = (rule.kind, rule.major, rule.minor);
            let existing = index.get(&device).copied();
            if rule.allow == default_allow {
                if let Some(slot) = existing {
                    let emptied = slots[slot].as_mut().is_some_and(|exception| {
                        exception.access = exception.access.without(rule.access);
                        exception.access.bits() == 0
                    });
                    if emptied {
                        slots[slot] = None;
                        index.remove(&device);
                    }
                }
            } else if let Some(exception) = existing.and_then(|slot| slots[slot].as_mut()) {
                exception.access = exception.access.union(rule.access);
            } else {
                index.insert(device, slots.len());
                slots.push(Some(DeviceRule {
                    allow: !default_allow,
                    ..*rule
                }));
            }
        }
        Policy {
            default_allow,
            exceptions: slots.into_iter().flatten().collect(),
        }
    }

    /// True when every access to every device is allowed: a wildcard allow and no exception.
    #[must_use]
    pub fn allows_everything(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// Whether an access to a device is allowed (the semantics the program implements).
    #[must_use]
    pub fn allows(&self, kind: DeviceType, major: u32, minor: u32, access: Access) -> bool {
        let hit = self.exceptions.iter().any(|e| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
                && access.without(e.access).bits() == 0
        });
        hit != self.default_allow
    }

    /// Compiles the policy into encoded `struct bpf_insn`s (little-endian hosts).
    pub fn compile(&self) -> Result<Vec<u64>, ProgramError> {
        let mut out = vec![
            // r2 = ctx->access_type; r3 = r2; r2 &= 0xffff (type); r3 >>= 16 (access)
            insn(LDX_MEM_W, 2, 1, 0, 0),
            insn(MOV32_REG, 3, 2, 0, 0),
            insn(AND32_IMM, 2, 0, 0, 0xffff),
            insn(RSH32_IMM, 3, 0, 0, 16),
            // r4 = ctx->major; r5 = ctx->minor
            insn(LDX_MEM_W, 4, 1, 4, 0),
            insn(LDX_MEM_W, 5, 1, 8, 0),
        ];
        let hit = i32::from(!self.default_allow);
        for exception in &self.exceptions {
            let mut block = Vec::new();
            let kind = match exception.kind {
                DeviceType::Char => DEV_CHAR,
                DeviceType::Block => DEV_BLOCK,
                DeviceType::All => return Err(ProgramError::WildcardException),
            };
            // Each jump is patched to skip to the end of this block.
            block.push(Jump::Imm(2, kind));
            if exception.access != Access::ALL {
                block.push(Jump::Plain(insn(MOV32_REG, 1, 3, 0, 0)));
                block.push(Jump::Plain(insn(
                    AND32_IMM,
                    1,
                    0,
                    0,
                    i32::from(exception.access.bits()),
                )));
                block.push(Jump::Reg(1, 3));
            }
            for (reg, number) in [(4, exception.major), (5, exception.minor)] {
                if let Some(number) = number {
                    let imm = i32::try_from(number).map_err(|_| ProgramError::Number(number))?;
                    block.push(Jump::Imm(reg, imm));
                }
            }
            block.push(Jump::Plain(insn(MOV64_IMM, 0, 0, 0, hit)));
            block.push(Jump::Plain(insn(EXIT, 0, 0, 0, 0)));
            let len = block.len();
            for (i, item) in block.into_iter().enumerate() {
                let skip = i16::try_from(len - i - 1).map_err(|_| ProgramError::TooLong)?;
                out.push(match item {
                    Jump::Imm(reg, imm) => insn(JNE_IMM, reg, 0, skip, imm),
                    Jump::Reg(dst, src) => insn(JNE_REG, dst, src, skip, 0),
                    Jump::Plain(code) => code,
                });
            }
        }
        out.push(insn(MOV64_IMM, 0, 0, 0, i32::from(self.default_allow)));
        out.push(insn(EXIT, 0, 0, 0, 0));
        Ok(out)
    }
}

/// Why a policy cannot be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProgramError {
    /// A device number above `i32::MAX` cannot be an immediate operand.
    #[error("device number {0} is too large for an eBPF device program")]
    Number(u32),
    /// A block longer than a jump offset can span (cannot happen with the fixed block size).
    #[error("device program block too long")]
    TooLong,
    /// Exceptions are never of type `a` (the reduction turns those into the default).
    #[error("a wildcard device type cannot be an exception")]
    WildcardException,
}

enum Jump {
    Imm(u8, i32),
    Reg(u8, u8),
    Plain(u64),
}

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const LDX_MEM_W: u8 = 0x61;
const MOV32_REG: u8 = 0xbc;
const AND32_IMM: u8 = 0x54;
const RSH32_IMM: u8 = 0x74;
const JNE_IMM: u8 = 0x55;
const JNE_REG: u8 = 0x5d;
const MOV64_IMM: u8 = 0xb7;
const EXIT: u8 = 0x95;

/// Encodes one `struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm; }`.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let regs = u64::from((dst & 0x0f) | ((src & 0x0f) << 4));
    let off = u64::from(off.cast_unsigned());
    let imm = u64::from(imm.cast_unsigned());
    u64::from(code) | (regs << 8) | (off << 16) | (imm << 32)
}

/// Runs a compiled program on one access, for tests, in `rbpf`, an eBPF interpreter written
/// independently of this module: the context is the kernel's `struct bpf_cgroup_dev_ctx`
/// (`access_type` = access << 16 | type, `major`, `minor`, native-endian u32s) and `r1` points
/// to it, as in the kernel. Returns what the program returns (1 allow, 0 deny).
#[cfg(test)]
pub(crate) fn interpret(program: &[u64], kind: u32, major: u32, minor: u32, access: u32) -> u64 {
    let code: Vec<u8> = program.iter().flat_map(|word| word.to_le_bytes()).collect();
    let mut ctx: Vec<u8> = [(access << 16) | kind, major, minor]
        .iter()
        .flat_map(|field| field.to_ne_bytes())
        .collect();
    let vm = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf accepts the program");
    vm.execute_program(&mut ctx).expect("rbpf runs the program")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: &str,
        major: Option<u32>,
        minor: Option<u32>,
        acc: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind: DeviceType::parse(kind).expect("type"),
            major,
            minor,
            access: Access::parse(acc).expect("access"),
        }
    }

    /// Exceptions are found by device, not by a scan of the exceptions so far (quadratic in the
    /// number of rules, issue 12 item 3); their order stays the order of first addition.
    #[test]
    fn many_rules_reduce_in_one_pass_keeping_the_order() {
        let mut rules = vec![rule(false, "a", None, None, "rwm")];
        rules.extend((0..100_000).map(|i| rule(true, "c", Some(i), Some(0), "rw")));
        // Remove every other one again, then add one of them back: it goes to the end.
        rules.extend(
            (0..100_000)
                .step_by(2)
                .map(|i| rule(false, "c", Some(i), Some(0), "rw")),
        );
        rules.push(rule(true, "c", Some(0), Some(0), "m"));
        rules.push(rule(true, "c", Some(1), Some(0), "m"));
        let policy = Policy::from_rules(&rules);
        assert!(!policy.default_allow);
        assert_eq!(policy.exceptions.len(), 50_001);
        assert_eq!(
            policy.exceptions[0],
            rule(true, "c", Some(1), Some(0), "rwm")
        );
        assert_eq!(
            policy.exceptions[50_000],
            rule(true, "c", Some(0), Some(0), "m")
        );
        assert!(!policy.allows_everything());
        rules.push(rule(true, "a", None, None, "rwm"));
        assert!(Policy::from_rules(&rules).allows_everything());
    }

    fn check(policy: &Policy, kind: DeviceType, major: u32, minor: u32, access: Access) {
        let program = policy.compile().expect("compile");
        let kind_bits = match kind {
            DeviceType::Char => 2,
            DeviceType::Block => 1,
            DeviceType::All => unreachable!("not an access type"),
        };
        let got = interpret(&program, kind_bits, major, minor, u32::from(access.bits()));
        assert_eq!(
            got == 1,
            policy.allows(kind, major, minor, access),
            "{kind:?} {major}:{minor} {access}"
        );
    }

    #[test]
    fn deny_all_then_allow_lists_exceptions() {
        let mut rules = vec![rule(false, "a", None, None, "rwm")];
        rules.extend(runc_default_rules(&[]));
        rules.push(DeviceRule::allow_device(
            DeviceType::Char,
            226,
            129,
            Access::ALL,
        ));
        let policy = Policy::from_rules(&rules);
        assert!(!policy.default_allow);
        assert!(policy.allows(DeviceType::Char, 226, 129, Access::READ));
        assert!(!policy.allows(DeviceType::Char, 226, 128, Access::READ));
        assert!(policy.allows(DeviceType::Char, 136, 4, Access::ALL));
        assert!(policy.allows(DeviceType::Block, 8, 0, Access::MKNOD));
        assert!(!policy.allows(DeviceType::Block, 8, 0, Access::READ));
        for (kind, major, minor) in [
            (DeviceType::Char, 226, 129),
            (DeviceType::Char, 226, 128),
            (DeviceType::Char, 1, 3),
            (DeviceType::Char, 136, 9),
            (DeviceType::Block, 8, 0),
            (DeviceType::Char, 10, 200),
        ] {
            for access in [Access::READ, Access::WRITE, Access::MKNOD, Access::ALL] {
                check(&policy, kind, major, minor, access);
            }
        }
    }

    #[test]
    fn partial_access_is_a_subset_check() {
        let policy = Policy::from_rules(&[rule(true, "c", Some(1), Some(3), "r")]);
        assert!(policy.allows(DeviceType::Char, 1, 3, Access::READ));
        assert!(!policy.allows(DeviceType::Char, 1, 3, Access::ALL));
        check(&policy, DeviceType::Char, 1, 3, Access::READ);
        check(&policy, DeviceType::Char, 1, 3, Access::WRITE);
        check(&policy, DeviceType::Char, 1, 3, Access::ALL);
    }

    #[test]
    fn a_deny_matching_the_default_removes_the_exception() {
        let policy = Policy::from_rules(&[
            rule(true, "c", Some(226), Some(128), "rwm"),
            rule(false, "c", Some(226), Some(128), "w"),
        ]);
        assert!(policy.allows(DeviceType::Char, 226, 128, Access::READ));
        assert!(!policy.allows(DeviceType::Char, 226, 128, Access::WRITE));
        let policy = Policy::from_rules(&[
            rule(true, "c", Some(226), Some(128), "rwm"),
            rule(false, "c", Some(226), Some(128), "rwm"),
        ]);
        assert!(policy.exceptions.is_empty());
    }

    #[test]
    fn allow_all_default_with_deny_exceptions() {
        let policy = Policy::from_rules(&[
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(226), None, "rwm"),
            rule(true, "c", Some(226), None, "r"),
        ]);
        assert!(policy.default_allow);
        assert!(policy.allows(DeviceType::Char, 226, 1, Access::READ));
        assert!(!policy.allows(DeviceType::Char, 226, 1, Access::WRITE));
        assert!(policy.allows(DeviceType::Block, 8, 1, Access::ALL));
        for access in [Access::READ, Access::WRITE, Access::ALL] {
            check(&policy, DeviceType::Char, 226, 1, access);
            check(&policy, DeviceType::Block, 8, 1, access);
        }
    }

    #[test]
    fn runc_defaults_skip_paths_the_config_lists() {
        let all = runc_default_rules(&[]);
        let without_null = runc_default_rules(&["/dev/null"]);
        assert_eq!(all.len(), without_null.len() + 1);
        assert!(
            !without_null
                .iter()
                .any(|r| r.major == Some(1) && r.minor == Some(3))
        );
    }

    #[test]
    fn v1_lines_use_the_kernel_syntax() {
        assert_eq!(
            DeviceRule::allow_device(DeviceType::Char, 226, 128, Access::ALL).v1_line(),
            "c 226:128 rwm"
        );
        assert_eq!(
            rule(true, "c", Some(136), None, "rw").v1_line(),
            "c 136:* rw"
        );
    }

    #[test]
    fn huge_device_numbers_are_refused() {
        let policy = Policy::from_rules(&[rule(true, "c", Some(u32::MAX), Some(0), "r")]);
        assert_eq!(policy.compile(), Err(ProgramError::Number(u32::MAX)));
    }
}
