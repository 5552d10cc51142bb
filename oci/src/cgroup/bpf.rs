//! The raw `bpf(2)` calls for cgroup device programs: nix has no wrapper for `bpf`, so this is
//! the one module of the workspace that uses `unsafe`, each call with its `// SAFETY:` reasoning.
//! The attribute layouts follow `union bpf_attr` in `include/uapi/linux/bpf.h`; the kernel zeroes
//! any tail beyond the size passed, so only the fields used are declared.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

/// Most programs a cgroup can hold per attach type (`BPF_CGROUP_MAX_PROGS`).
const MAX_PROGRAMS: usize = 64;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls `bpf(cmd, attr, size_of(attr))`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, exclusively borrowed `repr(C)` struct whose layout is a prefix of
    // `union bpf_attr` for `cmd`; its size is passed so the kernel reads and writes only within
    // it. Pointers stored inside `attr` are set by the callers to buffers that outlive this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    Errno::result(ret)
}

fn owned_fd(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = i32::try_from(ret).map_err(|_| Errno::EBADF)?;
    // SAFETY: a successful BPF_PROG_LOAD or BPF_PROG_GET_FD_BY_ID returns a new file descriptor
    // that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw(fd: &impl AsRawFd) -> u32 {
    // File descriptors are non-negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// Loads a cgroup device program made of `instructions` (encoded `struct bpf_insn`s).
pub(crate) fn load_device_program(instructions: &[u64]) -> Result<OwnedFd, Errno> {
    let license = c"Apache-2.0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(instructions.len()).map_err(|_| Errno::E2BIG)?,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// Ids of the device programs attached directly to the cgroup directory `cgroup`.
pub(crate) fn query_device_programs(cgroup: &OwnedFd) -> Result<Vec<u32>, Errno> {
    let mut ids = vec![0u32; MAX_PROGRAMS];
    let mut attr = ProgQueryAttr {
        target_fd: raw(cgroup),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).map_err(|_| Errno::E2BIG)?,
        ..ProgQueryAttr::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(usize::try_from(attr.prog_cnt).map_err(|_| Errno::E2BIG)?);
    Ok(ids)
}

/// A file descriptor for the loaded program with id `id`.
pub(crate) fn program_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..GetFdByIdAttr::default()
    };
    owned_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// Attaches `program` to `cgroup` in multi mode, replacing `old` atomically when given (the way
/// runc 1.1 attaches its own device filter).
pub(crate) fn attach_device_program(
    cgroup: &OwnedFd,
    program: &OwnedFd,
    old: Option<&OwnedFd>,
) -> Result<(), Errno> {
    let mut attr = ProgAttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(program),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = old {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = raw(old);
    }
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detaches `program` from `cgroup`.
pub(crate) fn detach_device_program(cgroup: &OwnedFd, program: &OwnedFd) -> Result<(), Errno> {
    let mut attr = ProgAttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(program),
        attach_type: BPF_CGROUP_DEVICE,
        ..ProgAttachAttr::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}
