//! Crash safety of `amdgpu-cdi generate --output`: many concurrent writers to ONE spec file, half
//! of them SIGKILLed at random points, while reader threads load the file through
//! `cdi::codec::load` in a loop. No reader may ever see a missing, partial, invalid or mixed spec;
//! the temp files that killed writers leave behind are removed by a later clean write once they
//! are stale (their writer is gone and they are older than a minute; see docs/fuzzing.md).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use cdi::spec::Spec;

use crate::files::names;
use crate::support::repo_root;

/// How long writers keep starting.
const DURATION: Duration = Duration::from_secs(3);
/// Writers running at once.
const WRITERS: usize = 4;
/// Reader threads.
const READERS: usize = 2;
/// The spec file name.
const NAME: &str = "amd.com-gpu.yaml";

fn host(name: &str) -> PathBuf {
    repo_root().join("examples/hosts").join(name)
}

fn generate(host: &Path, output: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi"));
    cmd.env_remove("AMDGPU_CDI_CONFIG")
        .arg("generate")
        .arg("--sysfs-root")
        .arg(host.join("sys"))
        .arg("--dev-root")
        .arg(host)
        .arg("--output")
        .arg(output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The spec `generate` writes for `host`, written alone into `dir`.
fn expected(host: &Path, dir: &Path) -> Spec {
    let path = dir.join(format!("{}.yaml", host.display().to_string().len()));
    let status = generate(host, &path).status().expect("run generate");
    assert!(status.success(), "generate {} failed", host.display());
    cdi::codec::load(&path).expect("load the generated spec")
}

/// A small xorshift generator: the test needs varied, not secure, kill points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn concurrent_killed_writers_never_expose_a_partial_spec() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let hosts = [host("mi300x-cpx"), host("mi300x-spx")];
    let specs = [
        expected(&hosts[0], scratch.path()),
        expected(&hosts[1], scratch.path()),
    ];
    assert_ne!(specs[0], specs[1], "the two versions must differ");

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(NAME);
    assert!(generate(&hosts[0], &out).status().expect("run").success());

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (stop, failures, out, specs) =
                (stop.clone(), failures.clone(), out.clone(), specs.clone());
            thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match cdi::codec::load(&out) {
                        Ok(spec) if specs.contains(&spec) => reads += 1,
                        Ok(_) => failures
                            .lock()
                            .expect("lock")
                            .push("a reader saw a spec that no writer wrote".into()),
                        Err(err) => failures
                            .lock()
                            .expect("lock")
                            .push(format!("a reader failed: {err}")),
                    }
                }
                reads
            })
        })
        .collect();

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    let mut running: Vec<(Child, Option<Instant>)> = Vec::new();
    let mut killed = HashSet::new();
    let (mut started, mut completed) = (0usize, 0usize);
    let start = Instant::now();
    while start.elapsed() < DURATION || !running.is_empty() {
        while start.elapsed() < DURATION && running.len() < WRITERS {
            let host = &hosts[started % 2];
            let child = generate(host, &out).spawn().expect("spawn generate");
            // Half the writers are killed somewhere in their first 40 ms (a debug build takes
            // about that long to discover the host and write the spec).
            let kill_at = (rng.below(2) == 0)
                .then(|| Instant::now() + Duration::from_micros(rng.below(40_000)));
            running.push((child, kill_at));
            started += 1;
        }
        thread::sleep(Duration::from_micros(500));
        let mut index = 0;
        while index < running.len() {
            let (child, kill_at) = &mut running[index];
            if let Some(status) = child.try_wait().expect("try_wait") {
                if kill_at.is_none() && !status.success() {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("a writer that was not killed failed: {status}"));
                }
                completed += 1;
                running.swap_remove(index);
            } else if kill_at.is_some_and(|at| Instant::now() >= at) {
                killed.insert(child.id());
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                running.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers
        .into_iter()
        .map(|r| r.join().expect("reader thread"))
        .sum();
    let failures = failures.lock().expect("lock").clone();
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    assert!(
        !killed.is_empty() && completed > 0 && reads > 0,
        "seed {seed}: nothing was exercised: {} killed, {completed} completed, {reads} reads",
        killed.len()
    );

    // Only killed writers may have left temp files, named `.<name>.tmp-<pid>-0`.
    let prefix = format!(".{NAME}.tmp-");
    let leftovers = names(dir.path()).len() - 1;
    println!(
        "seed {seed}: {started} writers, {} killed, {completed} completed, {reads} reads, \
         {leftovers} temp files left by killed writers",
        killed.len()
    );
    for name in names(dir.path()) {
        if name == NAME {
            continue;
        }
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("-0"))
            .and_then(|pid| pid.parse::<u32>().ok());
        assert!(
            pid.is_some_and(|pid| killed.contains(&pid)),
            "unexpected file {name}"
        );
        // Age the leftover past the staleness threshold, as if the next write came later.
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(dir.path().join(&name))
            .and_then(|f| f.set_modified(old))
            .expect("age the leftover");
    }
    // A clean run leaves exactly the spec: no temp file of its own, none of the dead writers.
    assert!(generate(&hosts[1], &out).status().expect("run").success());
    assert_eq!(names(dir.path()), [NAME]);
    assert_eq!(cdi::codec::load(&out).expect("load"), specs[1]);
}
