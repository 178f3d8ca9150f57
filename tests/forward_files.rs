//! The forwarder and its outbox files, against a real storescp: a delivered
//! file is deleted only once the queue no longer holds its job durably (a
//! `kill -9` in between must not leave a job without its file), and a job
//! whose file is gone never holds back the other instances of its study.

mod common;

use common::peers::*;
use common::*;
use deidgate::net::scu::Peer as ScuPeer;
use deidgate::pipeline::forward::{now, DicomDestination, Job, Queue};
use deidgate::pipeline::forwarder::run_worker;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

fn destination(port: u16, dead_dir: PathBuf) -> DicomDestination {
    DicomDestination {
        name: "archive".into(),
        peer: ScuPeer {
            ae_title: "STORESCP".into(),
            host: "127.0.0.1".into(),
            port,
            calling_ae_title: "DEIDGATE".into(),
            timeout: Duration::from_secs(10),
            tls: None,
        },
        retry_initial_secs: 1,
        retry_max_secs: 2,
        max_age_secs: 3600,
        batch_size: 16,
        dead_dir,
    }
}

/// A copy of a small CT in `outbox` under a new SOP Instance UID, and its job.
fn queued_copy(outbox: &Path, sop: &str, study: &str) -> Job {
    let src = data_dir().join("dicom/ct/CT_small.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop.into());
    obj.put_str(
        dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        sop,
    );
    std::fs::create_dir_all(outbox).unwrap();
    let path = outbox.join(format!("{sop}.1.dcm"));
    obj.write_to_file(&path).unwrap();
    let t = now();
    Job {
        path,
        sop_class: obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .into(),
        sop_instance: sop.into(),
        study_uid: study.into(),
        enqueued_at: t,
        attempts: 0,
        next_at: t,
        last_error: None,
    }
}

type Wake = Arc<(Mutex<bool>, Condvar)>;

/// The forwarder thread of one destination, stopped when dropped.
struct Worker {
    stop: Arc<AtomicBool>,
    wake: Wake,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(dest: DicomDestination, queue: Queue) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let wake: Wake = Arc::new((Mutex::new(true), Condvar::new()));
        let (s, w) = (stop.clone(), wake.clone());
        let handle = std::thread::spawn(move || run_worker(dest, queue, s, w));
        Worker {
            stop,
            wake,
            handle: Some(handle),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (lock, cv) = &*self.wake;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            h.join().ok();
        }
    }
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < DEADLINE, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_job_whose_file_is_gone_is_dead_lettered_and_its_study_is_still_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _scp = storescp(&tmp.path().join("scp"), port);
    let db = sled::open(tmp.path().join("db")).unwrap();
    let queue = Queue::open(&db, "archive").unwrap();
    let outbox = tmp.path().join("outbox");
    // One study: the job due first has lost its file, the other has not.
    let gone = queued_copy(&outbox, "2.25.1001", "2.25.77");
    std::fs::remove_file(&gone.path).unwrap();
    let kept = queued_copy(&outbox, "2.25.1002", "2.25.77");
    queue.enqueue(&gone).unwrap();
    queue.enqueue(&kept).unwrap();

    let _w = Worker::start(destination(port, tmp.path().join("dead")), queue.clone());
    // The delivered file goes after the queue's flush, so wait for both.
    wait("the queue drains and the delivered file goes", || {
        queue.depth() == 0 && !kept.path.exists()
    });
    let received = files_under(&tmp.path().join("scp"));
    assert_eq!(received.len(), 1, "the readable instance reached storescp");
    let obj = dicom_object::open_file(&received[0]).unwrap();
    assert_eq!(
        obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0'),
        "2.25.1002"
    );
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.sop_instance, "2.25.1001");
    assert!(
        dead[0].reason().contains("outbox file missing"),
        "{}",
        dead[0].reason()
    );
}

/// Child side of the crash test: does nothing unless the parent started
/// this binary with the environment below. Forwards one queued file and
/// aborts (no destructors, no flush) the moment the file is deleted.
#[test]
fn crash_after_delivery_child() {
    let (Ok(dir), Ok(port)) = (
        std::env::var("DEIDGATE_TEST_FORWARD_DIR"),
        std::env::var("DEIDGATE_TEST_FORWARD_PORT"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let db = sled::open(dir.join("db")).unwrap();
    let queue = Queue::open(&db, "archive").unwrap();
    let job = queued_copy(&dir.join("outbox"), "2.25.2001", "2.25.78");
    queue.enqueue(&job).unwrap();
    db.flush().unwrap();
    let _w = Worker::start(
        destination(port.parse().unwrap(), dir.join("dead")),
        queue.clone(),
    );
    wait("the delivered file is deleted", || !job.path.exists());
    std::process::abort();
}

#[test]
fn a_crash_right_after_delivery_leaves_no_job_without_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _scp = storescp(&tmp.path().join("scp"), port);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_after_delivery_child", "--nocapture"])
        .env("DEIDGATE_TEST_FORWARD_DIR", tmp.path())
        .env("DEIDGATE_TEST_FORWARD_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child should have aborted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files_under(&tmp.path().join("scp")).len(),
        1,
        "delivered before the crash"
    );
    // What a restart finds: every queued job still has its file.
    let db = sled::open(tmp.path().join("db")).unwrap();
    let queue = Queue::open(&db, "archive").unwrap();
    let batch = queue.next_batch(u64::MAX, 100).unwrap();
    for job in &batch {
        assert!(
            job.path.exists(),
            "{} is queued after the crash but its file is gone",
            job.sop_instance
        );
    }
    assert_eq!(
        batch.len(),
        0,
        "the delivery was durable before the file went"
    );
}
