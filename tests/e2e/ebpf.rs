//! The cgroup v2 path of the prestart hook on a real kernel: a process in a test cgroup whose
//! eBPF device program denies everything can open a node after the hook's update replaced the
//! program, and still cannot open another one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amdgpu_cdi_oci::cgroup::program::{Access, DeviceRule, DeviceType, Policy};
use amdgpu_cdi_oci::cgroup::{self, CgroupRoots, DeviceCgroups};
use amdgpu_cdi_oci::syscalls::{RealSyscalls, Syscalls};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::support;

/// The cgroup2 mount point from this process's mount table.
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// A test cgroup removed on drop, after its processes are killed.
struct TestCgroup {
    dir: PathBuf,
    children: Vec<Child>,
}

impl TestCgroup {
    fn create(mount: &Path, name: &str) -> Self {
        let dir = mount.join(name);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self {
            dir,
            children: Vec::new(),
        }
    }

    /// Runs `script` with busybox sh after moving the shell into this cgroup.
    fn run(&self, script: &str) -> bool {
        let procs = self.dir.join("cgroup.procs");
        let status = Command::new("/bin/busybox")
            .args(["sh", "-c"])
            .arg(format!("echo $$ > '{}' && {script}", procs.display()))
            .stderr(Stdio::null())
            .status()
            .expect("run busybox sh");
        status.success()
    }

    /// Starts a long-lived process inside the cgroup and returns its pid.
    fn spawn_sleeper(&mut self) -> i32 {
        let procs = self.dir.join("cgroup.procs");
        let child = Command::new("/bin/busybox")
            .args(["sh", "-c"])
            .arg(format!("echo $$ > '{}' && exec sleep 60", procs.display()))
            .spawn()
            .expect("spawn sleeper");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = pid.to_string();
        while !fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .any(|l| l == wanted)
        {
            assert!(Instant::now() < deadline, "sleeper never joined the cgroup");
            std::thread::sleep(Duration::from_millis(10));
        }
        pid
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn ebpf_device_program_is_replaced_with_the_new_node_allowed() {
    if !support::prerequisites("ebpf_device_program_is_replaced", &[]) {
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        crate::skip::unavailable(
            "ebpf_device_program_is_replaced",
            "no cgroup2 hierarchy is mounted",
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let allowed = tmp.path().join("allowed");
    let other = tmp.path().join("other");
    let mode = Mode::from_bits_truncate(0o666);
    mknod(&allowed, SFlag::S_IFCHR, mode, makedev(1, 3)).expect("mknod allowed (1:3)");
    mknod(&other, SFlag::S_IFCHR, mode, makedev(1, 5)).expect("mknod other (1:5)");

    let name = format!("amdgpu-cdi-ebpf-{}", std::process::id());
    let mut cg = TestCgroup::create(&mount, &name);
    let host = RealSyscalls;
    let deny_all = Policy::from_rules(&[]).compile().expect("compile deny-all");
    let program = host
        .bpf_load_device_program(&deny_all)
        .expect("load the deny-all device program");
    host.bpf_attach_device_program(&cg.dir, &program, None)
        .expect("attach the deny-all device program");

    let open = |path: &Path| format!("true < '{}'", path.display());
    assert!(
        !cg.run(&open(&allowed)),
        "deny-all program must block the node before the update"
    );

    let pid = cg.spawn_sleeper();
    let found = cgroup::locate(&host, &CgroupRoots::default(), pid).expect("locate cgroups");
    assert_eq!(found.v2.as_deref(), Some(cg.dir.as_path()));
    let only_v2 = DeviceCgroups {
        v1: None,
        v2: found.v2.clone(),
    };
    let before = host.bpf_query_device_programs(&cg.dir).expect("query");
    assert_eq!(before.len(), 1);
    let new = DeviceRule::allow_device(DeviceType::Char, 1, 3, Access::ALL);
    let outcome = cgroup::allow(&host, &only_v2, &[], &[new]).expect("replace the program");
    assert_eq!(outcome.v2_replaced.as_deref(), Some(cg.dir.as_path()));
    let after = host.bpf_query_device_programs(&cg.dir).expect("query");
    assert_eq!(after.len(), 1, "exactly one program stays attached");
    assert_ne!(after, before, "the old program was replaced");

    assert!(
        cg.run(&open(&allowed)),
        "the allowed node must open after the update"
    );
    assert!(!cg.run(&open(&other)), "another node must stay denied");

    // A second update (two programs attached) takes the attach-then-detach path.
    let extra = host
        .bpf_load_device_program(&deny_all)
        .expect("load a second program");
    host.bpf_attach_device_program(&cg.dir, &extra, None)
        .expect("attach a second program");
    let zero = DeviceRule::allow_device(DeviceType::Char, 1, 5, Access::READ);
    cgroup::allow(&host, &only_v2, &[new], &[zero]).expect("replace two programs");
    assert_eq!(
        host.bpf_query_device_programs(&cg.dir)
            .expect("query")
            .len(),
        1
    );
    assert!(cg.run(&open(&allowed)), "the earlier rule is kept");
    assert!(
        cg.run(&open(&other)),
        "the new read-only rule allows reading"
    );
    assert!(
        !cg.run(&format!("true > '{}'", other.display())),
        "the read-only rule does not allow writing"
    );
}
