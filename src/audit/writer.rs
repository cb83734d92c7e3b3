//! The audit writer: one log, chained and group-committed.
//!
//! With `fsync = "batch"` or `"never"` the request task writes its own
//! record: it serializes it without any lock, then takes the log's mutex,
//! chains the line (seq and `prev`), hands it to the kernel with one
//! `write(2)` and returns. Handing records to a thread cost a futex wake
//! there and another back per request: two context switches when the gate
//! runs on one core, about 40 % of its CPU under small GETs (BENCHMARKS.md).
//! A write of a line to the page cache takes a few microseconds, so holding
//! the mutex across it costs less than the hop did.
//!
//! Tasks on other threads do not wait for that mutex: while one task
//! writes, records that arrive are queued in the log's inbox, and the
//! writing task takes the whole queue as its next batch, one `write(2)`
//! for all of them (a decision's task awaits its answer; a completion's
//! does not wait at all). So under contention records are batched as the
//! writer thread used to batch them. A task writes at most [`MAX_ROUNDS`]
//! batches before it goes back to its own work and leaves the rest of the
//! queue to the writer thread. The request that fills a segment closes it,
//! before others could grow it past its size: the next batch starts the
//! next segment, and the writer thread seals the closed one (below).
//!
//! One worker thread never meets another task mid-write, so the inbox
//! alone would leave it one `write(2)` per request. A decision's task
//! that claims the write therefore puts its record in the inbox and
//! yields first: the worker runs the other tasks that are ready (under
//! load, the other connections whose requests arrived with the same poll
//! of the sockets), their decisions join the queue, and the claiming task
//! writes them all when it resumes. Tokio resumes a yielded task once the
//! worker's run queue is empty, or after its next `event_interval` (61)
//! tasks, when it polls the sockets again; so the yield costs an idle gate
//! one more pass of the scheduler (a non-blocking `epoll_wait`), and a
//! loaded one saves a `write(2)` per request that joins.
//!
//! In batch mode a completion does not need a write of its own either:
//! while the writer thread's fsync is due (within `batch_ms` of the last
//! write), a completion is parked in the inbox, and the next decision's
//! write, or else the thread when it wakes for that fsync, takes it along.
//! Under load that halves the writes, one per request instead of two. The
//! price: a crash of the process can lose the completions of the last
//! `batch_ms`, as a power cut can lose every record of it; a decision is
//! still written before its request goes on.
//!
//! With `fsync = "always"` an answer waits for an fsync, which is too long
//! to hold the mutex for: requests hand records over a bounded channel to
//! the writer thread, which chains whatever is queued into one buffer,
//! writes it with one `write(2)`, fsyncs once and only then answers every
//! decision in the batch, so the cost of the fsync is shared. Both paths
//! chain and write with the same code, under the same mutex.
//!
//! A failed write leaves no trace: the file is cut back to the end of the
//! last good write, `seq` and `prev` are rewound, and the next write tries
//! again (reopening the segment, or starting a new one if it is gone).
//!
//! The writer thread keeps everything that needs a clock. In batch mode it
//! fsyncs every `batch_ms` while records come in, on a duplicate of the
//! open segment's descriptor and outside the mutex, so requests keep
//! writing meanwhile; a request that leaves work due before the thread's
//! next planned wake (the first unsynced record, a completion to retry)
//! sends it a wake. It closes the open segment once it is old, and writes
//! the seal of a closed segment and, when the last one is old and records
//! came since, a checkpoint. Both first fsync what they vouch for, whatever
//! `fsync` says: a seal or checkpoint that outlived its records in a power
//! cut would accuse an honest log of being cut. They are the only places
//! that sign, so the cost of a signature is paid once per segment and once
//! per checkpoint interval, never per record.
//!
//! A seal is written outside the mutex, while requests write on into the
//! next segment: its fsyncs held every request up for milliseconds when
//! the request that filled the segment wrote it, and for hundreds of them
//! when another process kept the disk busy (BENCHMARKS.md). So the segment
//! before the newest may be unsealed for a while, and after a crash until
//! the next start seals it; `audit verify` accepts that while the newest is
//! open. One closed segment waits for its seal at a time: while it waits
//! (a seal that cannot be written is tried again every second), the open
//! segment grows past its size.
//!
//! [`AuditHandle::shutdown`] seals the open segment too, so a log that was
//! stopped cleanly has every record under a seal; only a crash leaves the
//! newest segment unsealed (and perhaps the one before it), and the next
//! writer appends to it (and seals the one before). When every
//! handle is dropped without a shutdown (a panic unwinding, say) the writer
//! fsyncs and checkpoints but leaves the segment open: nobody asked for
//! the log to be closed.

use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, LineError, Link, Unchained, GENESIS};
use super::keys::Signer;
use super::record::{timestamp, CompletionRecord, DecisionRecord, RecordMut, RecoveryRecord};
use super::seal::{self, Checkpoint, Seal, Statement, CHECKPOINT_FILE};

/// `audit.fsync`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum FsyncMode {
    /// A decision is answered only once its record is on disk.
    Always,
    /// At most one fsync per `batch_ms`: records answered in that window
    /// can be lost in a power cut; in a crash of the process, only the
    /// completions of that window (see the module docs).
    #[default]
    Batch,
    /// Left to the operating system.
    Never,
}

#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub dir: PathBuf,
    /// Names this gate in every record.
    pub instance: String,
    pub fsync: FsyncMode,
    pub batch_ms: u64,
    /// With `fsync = "always"`, records that may wait for the writer
    /// thread (further callers wait for room); in every mode, completions
    /// of failed writes kept to be retried.
    pub queue: usize,
    /// A segment is sealed once it holds this many bytes…
    pub segment_bytes: u64,
    /// …or once its first record is this old.
    pub segment_max_age: Duration,
    /// How often a checkpoint is written while records come in.
    pub checkpoint_interval: Duration,
    /// Ed25519 PKCS#8 PEM key that signs seals and checkpoints; without
    /// one they are written unsigned.
    pub signing_key: Option<PathBuf>,
}

/// The defaults of `[audit]` in `gatekeeper.toml`.
impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            dir: PathBuf::from("audit"),
            instance: "gatekeeper".into(),
            fsync: FsyncMode::default(),
            batch_ms: 5,
            queue: 65_536,
            segment_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(3600),
            checkpoint_interval: Duration::from_secs(5),
            signing_key: None,
        }
    }
}

/// Counters for the metrics module, read at scrape time.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Records written (handed to the kernel, and fsynced where the mode
    /// asks for it before an answer).
    pub records_total: AtomicU64,
    /// Failed batches and failed fsyncs.
    pub write_errors_total: AtomicU64,
    /// Records accepted but never written: in a failed batch (decisions;
    /// completions are retried while there is room), or sent to a writer
    /// that has stopped.
    pub lost_total: AtomicU64,
    /// Records waiting to be written: with `fsync = "always"` those in the
    /// writer thread's channel; otherwise those waiting in the log's inbox:
    /// queued while another task writes, or completions parked for the
    /// next write.
    pub queue_depth: AtomicU64,
    /// Successful batch writes: one `write(2)` each (more only if the
    /// kernel takes a buffer in pieces).
    pub writes_total: AtomicU64,
    /// fsyncs of segment data (a new segment's directory fsync aside).
    pub fsyncs_total: AtomicU64,
    /// The last seq known to be on disk (0 for none): stored after its
    /// fsync returned, before any decision it covers is answered.
    pub synced_seq: AtomicU64,
    pub seals_total: AtomicU64,
    /// Closed segments whose seal is not yet written: 0 or 1, as one
    /// waits at a time.
    pub awaiting_seal: AtomicU64,
    pub checkpoints_total: AtomicU64,
    /// Seals and checkpoints that could not be written (they are tried
    /// again; the records they cover are written already).
    pub seal_errors_total: AtomicU64,
    /// Time from the start of a successful batch write to its answer
    /// (including its fsync, when there is one): the sum, and how many
    /// took how long.
    pub write_nanos_sum: AtomicU64,
    pub write_latency: Latencies,
    healthy: AtomicBool,
}

/// Upper bounds, in seconds, of the write latency buckets: from a write
/// to the page cache to an fsync on a slow disk.
pub const WRITE_LATENCY_BOUNDS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// A histogram of plain atomics, so the writer does not depend on a
/// metrics library: a count per bucket of [`WRITE_LATENCY_BOUNDS`], and
/// one for longer.
#[derive(Debug, Default)]
pub struct Latencies {
    counts: [AtomicU64; WRITE_LATENCY_BOUNDS.len() + 1],
}

impl Latencies {
    fn observe(&self, nanos: u64) {
        let seconds = nanos as f64 / 1e9;
        let i = WRITE_LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(WRITE_LATENCY_BOUNDS.len());
        self.counts[i].fetch_add(1, Relaxed);
    }

    /// How many took at most each bound, then how many in all.
    pub fn cumulative(&self) -> [u64; WRITE_LATENCY_BOUNDS.len() + 1] {
        let mut total = 0;
        self.counts.each_ref().map(|c| {
            total += c.load(Relaxed);
            total
        })
    }
}

/// Where a decision record went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Written {
    pub seq: u64,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditUnavailable {
    #[error("audit log write failed: {0}")]
    Write(Arc<io::Error>),
    #[error("audit writer has stopped")]
    Stopped,
}

type Ack = oneshot::Sender<Result<Written, AuditUnavailable>>;

/// Who hears how a record's write went.
enum Reply {
    /// Nobody: a completion, kept to be retried when its write fails.
    Unawaited,
    /// A decision sent to the writer thread.
    Ack(Ack),
    /// The decision's own task, writing it: it gets the result returned.
    Caller,
}

enum Msg {
    Record(Unchained, Reply),
    /// Work came due before the writer thread planned to wake.
    Wake,
    Shutdown(oneshot::Sender<()>),
}

/// The log, shared by the writer thread and (unless `fsync = "always"`)
/// the request tasks.
struct Core {
    /// `None` once the writer has stopped.
    log: Mutex<Option<Writer>>,
    inbox: Mutex<Inbox>,
}

type Shared = Arc<Core>;

/// Records that arrived while another task (or the writer thread) writes.
#[derive(Default)]
struct Inbox {
    queue: Vec<(Unchained, Reply)>,
    /// Whether someone writes, and will take the queue before it stops.
    writing: bool,
    /// Whether completions may wait for the next write: the writer thread
    /// wakes within `batch_ms` (see `plan`).
    parking: bool,
}

/// How many batches a request task writes before it leaves the queue to
/// the writer thread: its own connections wait meanwhile.
const MAX_ROUNDS: usize = 4;

/// How a record offered to the log fares.
enum Offered<'a> {
    /// This task wrote it (and maybe others'): the answer for it.
    Written(Result<Option<Written>, AuditUnavailable>),
    /// This task is to write it, with what others queue meanwhile.
    Gathering(Gathering<'a>),
    /// Queued for the task that writes: the answer comes here for a
    /// decision.
    Queued(Option<oneshot::Receiver<Result<Written, AuditUnavailable>>>),
}

/// The write a decision's task has claimed and not yet made. Dropped
/// unmade (its request cancelled while it yielded), it writes anyway: the
/// queue holds other tasks' records, and the log stays claimed until
/// someone writes them.
struct Gathering<'a>(Option<&'a AuditHandle>);

impl Gathering<'_> {
    fn write(mut self) -> Result<Option<Written>, AuditUnavailable> {
        self.0.take().expect("written once").write_queue()
    }
}

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.write_queue();
        }
    }
}

/// A cheap handle on the one writer of a log.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Msg>,
    log: Shared,
    /// Whether request tasks write their records themselves.
    direct: bool,
    instance: Arc<str>,
    stats: Arc<AuditStats>,
}

/// Recovers the log in `cfg.dir` (see [`Writer::recover`]) and starts its
/// writer thread.
pub fn start(cfg: AuditConfig) -> io::Result<AuditHandle> {
    std::fs::create_dir_all(&cfg.dir)?;
    // A second writer on the same log would fork the chain.
    let lock = File::create(cfg.dir.join("writer.lock"))?;
    lock.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another audit writer", cfg.dir.display()),
        ),
        TryLockError::Error(e) => e,
    })?;
    let stats = Arc::new(AuditStats::default());
    let writer = Writer::recover(&cfg, lock, stats.clone())?;
    stats.healthy.store(true, Relaxed);
    let max_batch = cfg.queue.max(1);
    let (tx, rx) = mpsc::channel(max_batch);
    let log: Shared = Arc::new(Core {
        log: Mutex::new(Some(writer)),
        inbox: Mutex::new(Inbox::default()),
    });
    // A runtime of its own only for the channel and the timers: the file
    // I/O blocks this dedicated thread and nothing else.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let thread_log = log.clone();
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || rt.block_on(run(thread_log, thread_stats, rx, max_batch)))?;
    Ok(AuditHandle {
        tx,
        log,
        direct: cfg.fsync != FsyncMode::Always,
        instance: cfg.instance.into(),
        stats,
    })
}

impl AuditHandle {
    /// Resolves once the record has been handed to the kernel, and for
    /// `fsync = "always"` once it is on disk: a crash of the process after
    /// this never loses it.
    ///
    /// The record is encoded when this is called, not when the answer is
    /// first polled: what the request's task keeps across the wait is the
    /// line, not the 800-byte record it borrows from the request.
    pub fn decision(
        &self,
        rec: DecisionRecord<'_>,
    ) -> impl Future<Output = Result<Written, AuditUnavailable>> + Send + '_ {
        let mut rec: DecisionRecord<'_> = rec;
        let line = self.encode(RecordMut::Decision(&mut rec));
        async move {
            let answer = if self.direct {
                match self.offer(line, true) {
                    Offered::Written(written) => {
                        return written.and_then(|w| w.ok_or(AuditUnavailable::Stopped))
                    }
                    Offered::Gathering(gathering) => {
                        tokio::task::yield_now().await;
                        return gathering
                            .write()
                            .and_then(|w| w.ok_or(AuditUnavailable::Stopped));
                    }
                    Offered::Queued(answer) => answer.expect("a decision is awaited"),
                }
            } else {
                let (ack, answer) = oneshot::channel();
                self.enqueue(line, Reply::Ack(ack)).await?;
                answer
            };
            answer.await.unwrap_or_else(|_| {
                self.stats.lost_total.fetch_add(1, Relaxed);
                Err(AuditUnavailable::Stopped)
            })
        }
    }

    /// Writes the record, or queues it for the next batch, unawaited.
    pub async fn completion(&self, rec: CompletionRecord<'_>) {
        // A stopped writer has counted the loss; the request has ended and
        // has nobody to tell.
        let mut rec: CompletionRecord<'_> = rec;
        let line = self.encode(RecordMut::Completion(&mut rec));
        if self.direct {
            self.offer(line, false);
        } else {
            let _ = self.enqueue(line, Reply::Unawaited).await;
        }
    }

    /// Writes the record, or queues it if the queue has room now, without
    /// waiting or a task of its own; gives it back when the queue is full.
    #[must_use]
    pub fn try_completion<'a>(&self, rec: CompletionRecord<'a>) -> Option<CompletionRecord<'a>> {
        if self.direct {
            let mut rec: CompletionRecord<'_> = rec;
            self.offer(self.encode(RecordMut::Completion(&mut rec)), false);
            return None;
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                let mut rec: CompletionRecord<'_> = rec;
                let line = self.encode(RecordMut::Completion(&mut rec));
                self.send(permit, line, Reply::Unawaited);
                None
            }
            Err(mpsc::error::TrySendError::Full(())) => Some(rec),
            Err(mpsc::error::TrySendError::Closed(())) => {
                self.stats.lost_total.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// The record takes the instance's name by reference: callers move it
    /// into a binding whose lifetime ends with this borrow of `self`.
    fn encode<'a>(&'a self, rec: RecordMut<'_, 'a>) -> Unchained {
        Unchained::new(rec, &self.instance)
    }

    /// Claims the next write for the encoded record, or queues it for the
    /// task that has claimed it (see the module docs). A completion is
    /// written at once when it claims the write; a decision's task writes
    /// once the other runnable tasks had their turn ([`Gathering`]).
    fn offer(&self, rec: Unchained, awaited: bool) -> Offered<'_> {
        let Some(mut inbox) = lock(&self.log.inbox) else {
            self.stats.lost_total.fetch_add(1, Relaxed);
            return Offered::Written(Err(AuditUnavailable::Stopped));
        };
        self.stats.queue_depth.fetch_add(1, Relaxed);
        if inbox.writing || (!awaited && inbox.parking) {
            if !awaited {
                inbox.queue.push((rec, Reply::Unawaited));
                return Offered::Queued(None);
            }
            let (ack, answer) = oneshot::channel();
            inbox.queue.push((rec, Reply::Ack(ack)));
            return Offered::Queued(Some(answer));
        }
        inbox.writing = true;
        // Parked completions go first, in the order they came.
        if awaited {
            inbox.queue.push((rec, Reply::Caller));
            return Offered::Gathering(Gathering(Some(self)));
        }
        inbox.queue.push((rec, Reply::Unawaited));
        drop(inbox);
        Offered::Written(self.write_queue())
    }

    /// Writes what the inbox holds, by the task that claimed the write.
    fn write_queue(&self) -> Result<Option<Written>, AuditUnavailable> {
        let Some(batch) = lock(&self.log.inbox).map(|mut inbox| std::mem::take(&mut inbox.queue))
        else {
            self.stats.lost_total.fetch_add(1, Relaxed);
            return Err(AuditUnavailable::Stopped);
        };
        self.stats
            .queue_depth
            .fetch_sub(batch.len() as u64, Relaxed);
        let (written, wake) = write_rounds(&self.log, &self.stats, batch, MAX_ROUNDS);
        if wake {
            // A full channel holds a wake already. A closed one means the
            // writer has stopped; then `write_rounds` left nothing queued.
            let _ = self.tx.try_send(Msg::Wake);
        }
        written
    }

    async fn enqueue(&self, rec: Unchained, reply: Reply) -> Result<(), AuditUnavailable> {
        // `reserve` waits for room without taking the record, so a caller
        // that gives up while waiting leaves nothing behind.
        let Ok(permit) = self.tx.reserve().await else {
            self.stats.lost_total.fetch_add(1, Relaxed);
            return Err(AuditUnavailable::Stopped);
        };
        self.send(permit, rec, reply);
        Ok(())
    }

    fn send(&self, permit: mpsc::Permit<'_, Msg>, rec: Unchained, reply: Reply) {
        self.stats.queue_depth.fetch_add(1, Relaxed);
        permit.send(Msg::Record(rec, reply));
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// Whether the last write succeeded.
    pub fn healthy(&self) -> bool {
        self.stats.healthy.load(Relaxed)
    }

    /// Writes everything queued before (and while) this is called, fsyncs,
    /// seals the open segment (unless it holds no record), writes a last
    /// checkpoint, and stops the writer; records sent afterwards are
    /// refused. The next writer on the log starts a new segment.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// The inbox or the log; `None` when a panic while it was held poisoned
/// it, which may have left it half-changed: the log then counts as stopped.
fn lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    m.lock().ok()
}

/// Writes `batch`, then what was queued meanwhile, for at most `rounds`
/// batches, by the one that set the inbox's `writing`, which it clears.
/// Returns the answer for the first batch's [`Reply::Caller`], and whether
/// the writer thread is to wake: for records left queued, or for work that
/// a write made due. Once the log has stopped, every queued record is
/// refused, whatever `rounds` says: the thread may be gone.
fn write_rounds(
    core: &Core,
    stats: &AuditStats,
    mut batch: Vec<(Unchained, Reply)>,
    rounds: usize,
) -> (Result<Option<Written>, AuditUnavailable>, bool) {
    let mut first = None;
    let mut wake = false;
    for round in 1.. {
        let mut guard = lock(&core.log);
        let mut parking = false;
        let written = match guard.as_mut().and_then(|log| log.as_mut()) {
            Some(writer) => {
                let written = writer.write(&mut batch);
                wake |= writer.wake_due();
                parking = writer.parks_completions();
                written
            }
            None => Err(refuse(&mut batch, stats)),
        };
        let stopped = guard.is_none_or(|log| log.is_none());
        first.get_or_insert(written);
        let Some(mut inbox) = lock(&core.inbox) else {
            break;
        };
        if inbox.queue.is_empty() || (round >= rounds && !stopped) {
            inbox.writing = false;
            inbox.parking = parking;
            wake |= !inbox.queue.is_empty();
            if inbox.queue.capacity() == 0 {
                // The next batch reuses its allocation.
                inbox.queue = batch;
            }
            break;
        }
        stats
            .queue_depth
            .fetch_sub(inbox.queue.len() as u64, Relaxed);
        // The queue gets the batch's (drained) allocation back.
        std::mem::swap(&mut batch, &mut inbox.queue);
    }
    (first.expect("at least one round"), wake)
}

/// Answers every record of `batch` that the log has stopped.
fn refuse(batch: &mut Vec<(Unchained, Reply)>, stats: &AuditStats) -> AuditUnavailable {
    for (_, reply) in batch.drain(..) {
        stats.lost_total.fetch_add(1, Relaxed);
        if let Reply::Ack(ack) = reply {
            let _ = ack.send(Err(AuditUnavailable::Stopped));
        }
    }
    AuditUnavailable::Stopped
}

/// How long a batch of completions that could not be written waits before
/// it is tried again when no new record comes to carry it.
const RETRY_AFTER: Duration = Duration::from_secs(1);

struct Writer {
    /// Locked for as long as this writer owns the log.
    _lock: File,
    instance: String,
    /// Shared with the writer thread's checkpoints, which sign outside
    /// the mutex.
    signer: Option<Arc<Signer>>,
    fsync: FsyncMode,
    batch_interval: Duration,
    segment_bytes: u64,
    checkpoint_interval: Duration,
    max_batch: usize,
    log: Log,
    /// A segment closed once full or old, waiting for its seal.
    sealing: Option<Sealing>,
    next_seq: u64,
    prev: String,
    buf: Vec<u8>,
    /// Completions of failed batches: nobody waits for them, so they are
    /// kept (up to `max_batch`) and written first in the next batch.
    retry: Vec<Unchained>,
    /// When the writer thread plans to wake next, while it waits.
    thread_wakes_at: Option<Instant>,
    last_failure: Instant,
    /// Written since the last fsync.
    dirty: bool,
    last_sync: Instant,
    /// The last seq on disk: what a seal or checkpoint may vouch for.
    synced_seq: u64,
    /// The first seq of the segment that holds the last record.
    tip_segment: u64,
    checkpointed_seq: u64,
    last_checkpoint: Instant,
    stats: Arc<AuditStats>,
}

impl Writer {
    /// Picks up the chain where the newest segment ends. A crash can leave
    /// that segment's end torn: bytes without a newline, or a last line
    /// that is not a record (the kernel may persist a file's new length
    /// before its data, which reads back as zeros). These are cut, at most
    /// the torn bytes and one line, and a recovery record saying so takes
    /// their place; the line before must then be a good record. Anything
    /// worse, a record whose hash does not match, or a log that ends before
    /// its checkpoint, is not a crash: the writer refuses to start rather
    /// than bury it. A sealed newest segment stays closed; an unsealed one
    /// is read through for what its seal will say, fsynced, and appended
    /// to.
    fn recover(cfg: &AuditConfig, lock: File, stats: Arc<AuditStats>) -> io::Result<Writer> {
        let signer = cfg
            .signing_key
            .as_deref()
            .map(Signer::load)
            .transpose()?
            .map(Arc::new);
        let now = Instant::now();
        let mut writer = Writer {
            _lock: lock,
            instance: cfg.instance.clone(),
            signer,
            fsync: cfg.fsync,
            batch_interval: Duration::from_millis(cfg.batch_ms),
            segment_bytes: cfg.segment_bytes,
            checkpoint_interval: cfg.checkpoint_interval,
            max_batch: cfg.queue.max(1),
            log: Log {
                dir: cfg.dir.clone(),
                sync_dir: cfg.fsync != FsyncMode::Never,
                max_age: cfg.segment_max_age,
                open: None,
                broken: None,
            },
            sealing: None,
            next_seq: 1,
            prev: GENESIS.to_owned(),
            buf: Vec::new(),
            retry: Vec::new(),
            thread_wakes_at: None,
            last_failure: now,
            dirty: false,
            last_sync: now,
            synced_seq: 0,
            tip_segment: 1,
            checkpointed_seq: 0,
            last_checkpoint: now,
            stats,
        };
        let mut segments = chain::segments(&cfg.dir)?;
        // A crash between a rotation and the first write to the next
        // segment leaves that one empty, after one still waiting for its
        // seal: the empty file goes, and the one before is taken up as the
        // newest, torn end and all.
        if let [.., (_, before), (_, newest)] = segments.as_slice() {
            if !seal::seal_path(before).exists() && newest.metadata()?.len() == 0 {
                std::fs::remove_file(newest)?;
                segments.pop();
            }
        }
        let Some((newest_seq, newest)) = segments.last() else {
            writer.check_checkpoint()?;
            return Ok(writer);
        };
        let sealed = seal::seal_path(newest).exists();
        let file = OpenOptions::new().read(true).write(true).open(newest)?;
        let tail = read_tail(&file, newest)?;
        let (last, tip) = match (&tail.last, segments.len()) {
            (Some(link), _) => (Some(link.clone()), *newest_seq),
            (None, 1) => (None, *newest_seq),
            // The newest segment holds no record: the chain ends in the one
            // before, which was closed whole.
            (None, n) => {
                let (seq, path) = &segments[n - 2];
                let before = read_tail(&File::open(path)?, path)?;
                if let Some(why) = before.cut {
                    return Err(damaged(path, &why));
                }
                (before.last, *seq)
            }
        };
        if let Some(link) = last {
            writer.next_seq = link.seq + 1;
            writer.prev = link.hash;
        }
        writer.tip_segment = tip;
        writer.check_checkpoint()?;
        let mut len = tail.good_len;
        if let Some(why) = tail.cut {
            if sealed {
                return Err(damaged(
                    newest,
                    &format!("it is sealed, yet its end is not ({why})"),
                ));
            }
            let cut_bytes = file.metadata()?.len() - len;
            let mut rec = RecoveryRecord {
                cut_bytes,
                reason: format!("{} from byte {len} of {}", why, newest.display()).into(),
                ..RecoveryRecord::default()
            };
            writer.chain(&Unchained::new(
                RecordMut::Recovery(&mut rec),
                &cfg.instance,
            ));
            // Written over the cut bytes before the file is shortened: if
            // this fails half-way, the next start finds a torn tail again
            // rather than a cut that no record mentions.
            file.write_all_at(&writer.buf, len)?;
            len += writer.buf.len() as u64;
            file.set_len(len)?;
            writer.stats.records_total.fetch_add(1, Relaxed);
            writer.tip_segment = *newest_seq;
            tracing::warn!(cut_bytes, segment = %newest.display(), "audit log recovered from a torn write");
        }
        if !sealed {
            // What the last run wrote may still be only in the page cache,
            // the names of its last segments too.
            file.sync_data()?;
            writer.stats.fsyncs_total.fetch_add(1, Relaxed);
            if writer.log.sync_dir {
                File::open(&cfg.dir)?.sync_all()?;
            }
            let (span, _) = read_span(newest, *newest_seq, &writer.prev)?;
            if let [.., (before_seq, before), _] = segments.as_slice() {
                if !seal::seal_path(before).exists() {
                    let closed = writer.closed_before(*before_seq, before, &span.prev)?;
                    writer.await_seal(closed);
                }
            }
            let age =
                OffsetDateTime::parse(&span.min_ts, &time::format_description::well_known::Rfc3339)
                    .map_or(Duration::ZERO, |t| {
                        (OffsetDateTime::now_utc() - t)
                            .try_into()
                            .unwrap_or(Duration::ZERO)
                    });
            let seal_at = if len >= cfg.segment_bytes {
                now
            } else {
                now + cfg.segment_max_age.saturating_sub(age)
            };
            writer.log.open = Some(Segment {
                file: OpenOptions::new().append(true).open(newest)?,
                path: newest.clone(),
                len,
                span,
                seal_at,
                named: true,
            });
        }
        writer.mark_synced();
        Ok(writer)
    }

    /// The segment before the newest, unsealed: closed, and its seal not
    /// yet written when the last writer stopped. It is taken up again to
    /// be sealed if it ends with the record the newest segment's first
    /// follows (`next_prev`); fsynced, as the last run may have left it
    /// in the page cache.
    fn closed_before(&self, first_seq: u64, path: &Path, next_prev: &str) -> io::Result<Sealing> {
        let (span, last) = read_span(path, first_seq, GENESIS)?;
        let last = last.filter(|last| last.hash == next_prev).ok_or_else(|| {
            damaged(
                path,
                "it has no seal, and the segment after it does not follow its last record",
            )
        })?;
        let file = OpenOptions::new().append(true).open(path)?;
        file.sync_data()?;
        self.stats.fsyncs_total.fetch_add(1, Relaxed);
        Ok(Sealing {
            // `recover` has fsynced the directory.
            segment: SegmentSync {
                file,
                path: path.to_owned(),
                named: true,
            },
            seal: self.seal_of(&span, last.seq, &last.hash),
            synced: true,
            due: Instant::now(),
        })
    }

    /// A log that ends before the seq its checkpoint vouches for was cut
    /// while no writer ran: appending to it, and then checkpointing, would
    /// hide that.
    fn check_checkpoint(&self) -> io::Result<()> {
        let path = self.log.dir.join(CHECKPOINT_FILE);
        if !path.exists() {
            return Ok(());
        }
        match seal::read(&path) {
            Ok(signed) => match signed.statement {
                Statement::Checkpoint(cp) if cp.seq >= self.next_seq => Err(damaged(
                    &path,
                    &format!(
                        "it vouches for seq {}, but the log ends at seq {}",
                        cp.seq,
                        self.next_seq - 1
                    ),
                )),
                _ => Ok(()),
            },
            Err(e) => {
                tracing::warn!(checkpoint = %path.display(), error = ?e, "unreadable audit checkpoint; the next one replaces it");
                Ok(())
            }
        }
    }

    /// Stops the writer: fsyncs, seals the open segment when a shutdown
    /// asked for it, and writes a last checkpoint. Dropping it then closes
    /// the segment and frees the log.
    fn stop(mut self, shutdown: bool) {
        if self.fsync != FsyncMode::Never || shutdown {
            self.sync_now();
        }
        // With the closed segment unsealed, the open one stays open too:
        // only the segment before the newest may wait for its seal, and
        // the next start writes that seal.
        if self.seal_closed_now() && shutdown {
            // Every record sealed: the next start opens a new segment, as
            // after a rotation. Only a crash leaves a segment open.
            self.close();
            self.seal_closed_now();
        }
        self.final_checkpoint();
        self.stats
            .lost_total
            .fetch_add(self.retry.len() as u64, Relaxed);
    }

    /// When the writer thread must act without a new record: a batch-mode
    /// fsync that is due, completions to retry, a segment to seal, or a
    /// checkpoint to write.
    fn wake_at(&self) -> Option<Instant> {
        let sync = (self.fsync == FsyncMode::Batch && self.dirty)
            .then(|| self.last_sync + self.batch_interval);
        let retry = (!self.retry.is_empty()).then(|| self.last_failure + RETRY_AFTER);
        let seal = match &self.sealing {
            Some(sealing) => Some(sealing.due),
            None => (self.log.open.as_ref())
                .filter(|seg| seg.span.records > 0)
                .map(|seg| seg.seal_at),
        };
        let checkpoint = (self.next_seq - 1 > self.checkpointed_seq)
            .then(|| self.last_checkpoint + self.checkpoint_interval);
        [sync, retry, seal, checkpoint].into_iter().flatten().min()
    }

    /// Whether completions may wait in the inbox for the next write: in
    /// batch mode, while records wait for the thread's fsync, which comes
    /// within `batch_ms` and writes them first.
    fn parks_completions(&self) -> bool {
        self.fsync == FsyncMode::Batch
            && self.dirty
            && self
                .thread_wakes_at
                .is_some_and(|at| at <= self.last_sync + self.batch_interval)
    }

    /// Whether a write made work due before the writer thread planned to
    /// wake; if so, the thread is taken to wake then.
    fn wake_due(&mut self) -> bool {
        let at = self.wake_at();
        let due = at.is_some_and(|at| self.thread_wakes_at.is_none_or(|planned| at < planned));
        if due {
            self.thread_wakes_at = at;
        }
        due
    }

    /// Does what is due on the clock, and returns what is to be done
    /// outside the mutex: the batch-mode fsync, and the checkpoint, which
    /// fsyncs first whatever `fsync` says. Requests keep writing meanwhile;
    /// under the mutex, a checkpoint's two fsyncs and its signature held
    /// them up for milliseconds every `checkpoint_interval`.
    fn on_timer(&mut self) -> Option<Background> {
        if !self.retry.is_empty() && self.last_failure.elapsed() >= RETRY_AFTER {
            let _ = self.commit(&mut Vec::new());
        }
        self.seal_if_due();
        let now = Instant::now();
        let seal = match (self.sealing.as_ref())
            .filter(|s| now >= s.due)
            .map(|s| self.seal_work(s))
        {
            Some(Ok(work)) => Some(work),
            Some(Err(e)) => {
                self.sealed(false);
                self.fail(&e);
                None
            }
            None => None,
        };
        let seq = self.next_seq - 1;
        let checkpoint = seq > self.checkpointed_seq
            && self.last_checkpoint.elapsed() >= self.checkpoint_interval;
        let sync = (checkpoint || self.fsync == FsyncMode::Batch)
            && self.synced_seq < seq
            && (checkpoint || self.last_sync.elapsed() >= self.batch_interval);
        if !checkpoint && !sync && seal.is_none() {
            return None;
        }
        if checkpoint {
            self.last_checkpoint = now;
        }
        let mut work = Background {
            seal,
            sync: None,
            seq,
            checkpoint: None,
        };
        if sync {
            self.dirty = false;
            self.last_sync = now;
            // With no segment open (after a failure, or a close) there is
            // nothing to sync here: the next good write's fsync covers the
            // file's earlier writes too, and a closed segment's records
            // are fsynced before its seal. A checkpoint waits for either.
            let open = self.log.open.as_ref();
            match open.map(|seg| SegmentSync::of(&seg.file, &seg.path, seg.named)) {
                Some(Ok(sync)) => work.sync = Some(sync),
                Some(Err(e)) => self.fail(&e),
                None => {}
            }
        }
        if checkpoint {
            work.checkpoint = Some(Publish {
                path: self.log.dir.join(CHECKPOINT_FILE),
                statement: self.checkpoint(),
                signer: self.signer.clone(),
            });
        }
        Some(work)
    }

    /// The end of a batch-mode fsync of the segment that held `seq`. A
    /// failed write since cut back only records after `seq`, so they are
    /// on disk whatever happened meanwhile.
    ///
    /// The segment may have been closed meanwhile; if it was not, and the
    /// closed one before it is not on disk yet, the records up to `seq`
    /// are not all on disk either.
    fn batch_synced(&mut self, seq: u64, path: &Path, synced: io::Result<()>) {
        match synced {
            Ok(()) => {
                self.stats.fsyncs_total.fetch_add(1, Relaxed);
                let segments = (self.log.open.iter_mut()).chain(self.log.broken.iter_mut());
                let named = (segments.map(|seg| (&seg.path, &mut seg.named))).chain(
                    self.sealing
                        .iter_mut()
                        .map(|s| (&s.segment.path, &mut s.segment.named)),
                );
                for (_, named) in named.filter(|(p, _)| *p == path) {
                    *named = true;
                }
                let covered =
                    (self.sealing.as_ref()).is_none_or(|s| s.synced || seq <= s.seal.last_seq);
                if covered {
                    self.synced_to(seq);
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Chains and writes a batch in a request task (see [`Self::commit`]).
    fn write(
        &mut self,
        batch: &mut Vec<(Unchained, Reply)>,
    ) -> Result<Option<Written>, AuditUnavailable> {
        let written = self.commit(batch);
        // The thread would close a full segment too, but only once it ran:
        // requests meanwhile would grow the segment past its size.
        self.seal_if_due();
        written
    }

    /// Chains and writes the retried completions and `batch`, answers
    /// those waiting on a channel, and returns where the [`Reply::Caller`]
    /// record went, if there is one.
    fn commit(
        &mut self,
        batch: &mut Vec<(Unchained, Reply)>,
    ) -> Result<Option<Written>, AuditUnavailable> {
        batch.splice(
            0..0,
            self.retry.drain(..).map(|rec| (rec, Reply::Unawaited)),
        );
        if batch.is_empty() {
            return Ok(None);
        }
        let (first_seq, first_prev) = (self.next_seq, self.prev.clone());
        self.buf.clear();
        for (rec, _) in batch.iter() {
            self.chain(rec);
        }
        let started = Instant::now();
        match self.write_batch(batch, &first_prev) {
            Ok(()) => {
                let nanos = started.elapsed().as_nanos() as u64;
                self.stats.write_nanos_sum.fetch_add(nanos, Relaxed);
                self.stats.write_latency.observe(nanos);
                self.stats
                    .records_total
                    .fetch_add(batch.len() as u64, Relaxed);
                if !self.stats.healthy.swap(true, Relaxed) {
                    tracing::info!("audit log writable again");
                }
                let mut caller = None;
                for (seq, (_, reply)) in (first_seq..).zip(batch.drain(..)) {
                    match reply {
                        Reply::Ack(ack) => {
                            let _ = ack.send(Ok(Written { seq }));
                        }
                        Reply::Caller => caller = Some(Written { seq }),
                        Reply::Unawaited => {}
                    }
                }
                Ok(caller)
            }
            Err(e) => {
                self.next_seq = first_seq;
                self.prev = first_prev;
                self.log.rollback();
                self.fail(&e);
                let err = AuditUnavailable::Write(Arc::new(e));
                for (rec, reply) in batch.drain(..) {
                    match reply {
                        Reply::Unawaited if self.retry.len() < self.max_batch => {
                            self.retry.push(rec)
                        }
                        reply => {
                            self.stats.lost_total.fetch_add(1, Relaxed);
                            if let Reply::Ack(ack) = reply {
                                let _ = ack.send(Err(err.clone()));
                            }
                        }
                    }
                }
                Err(err)
            }
        }
    }

    /// Gives `rec` the next seq and the chain's `prev`, and appends its line
    /// to the batch buffer.
    fn chain(&mut self, rec: &Unchained) {
        let hash = rec.append_line(&mut self.buf, self.next_seq, &self.prev);
        self.prev.clear();
        self.prev
            .push_str(std::str::from_utf8(&hash).expect("hex digits are ASCII"));
        self.next_seq += 1;
    }

    /// Writes the chained `batch` (in `buf`), which follows `first_prev`.
    fn write_batch(&mut self, batch: &[(Unchained, Reply)], first_prev: &str) -> io::Result<()> {
        let first_seq = self.next_seq - batch.len() as u64;
        let seg = self.log.open(first_seq, first_prev)?;
        seg.file.write_all(&self.buf)?;
        self.stats.writes_total.fetch_add(1, Relaxed);
        // In batch mode the writer thread fsyncs, without the mutex.
        let sync = self.fsync == FsyncMode::Always;
        if sync {
            seg.sync()?;
            self.stats.fsyncs_total.fetch_add(1, Relaxed);
        }
        let was_full = seg.len >= self.segment_bytes;
        seg.len += self.buf.len() as u64;
        if !was_full && seg.len >= self.segment_bytes {
            seg.seal_at = Instant::now();
        }
        seg.span.add(batch.iter().map(|(rec, _)| rec.ts.as_str()));
        self.tip_segment = seg.span.first_seq;
        if sync {
            self.mark_synced();
        } else {
            self.dirty = true;
        }
        Ok(())
    }

    /// An fsync outside a batch, when the writer stops (before its last
    /// seal and checkpoint): the closed segment's, then the open one's; and
    /// whether it covered every record written. The records it covers have
    /// been answered already, so a failure can only be counted. With no
    /// segment open after a failure there is nothing to sync now: the next
    /// good batch's fsync covers the file's earlier writes too.
    fn sync_now(&mut self) -> bool {
        // The closed segment first: the open one's records follow its.
        if let Some(sealing) = self.sealing.as_ref().filter(|s| !s.synced) {
            let synced = sealing.segment.run();
            self.closed_synced(synced);
        }
        let closed_synced = self.sealing.as_ref().is_none_or(|s| s.synced);
        let synced = match &mut self.log.open {
            Some(seg) if closed_synced => match seg.sync() {
                Ok(()) => {
                    self.stats.fsyncs_total.fetch_add(1, Relaxed);
                    true
                }
                Err(e) => {
                    self.fail(&e);
                    false
                }
            },
            // Every record is in the closed segment or sealed ones.
            None => closed_synced && self.log.broken.is_none(),
            Some(_) => false,
        };
        if synced {
            self.mark_synced();
        } else {
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        synced
    }

    /// Every record written so far is on disk.
    fn mark_synced(&mut self) {
        self.dirty = false;
        self.last_sync = Instant::now();
        self.synced_to(self.next_seq - 1);
    }

    /// Records up to `seq` are on disk.
    fn synced_to(&mut self, seq: u64) {
        // A batch fsync that ran outside the mutex may end after a seal's.
        if seq > self.synced_seq {
            self.synced_seq = seq;
            self.stats.synced_seq.store(seq, Relaxed);
        }
    }

    /// Whether every record written is on disk, after an fsync if needed.
    fn all_synced(&mut self) -> bool {
        self.synced_seq == self.next_seq - 1 || self.sync_now()
    }

    /// Closes the open segment once it is full or old, unless another
    /// still waits for its seal: then the open one grows on until that
    /// seal is written, as one whose seal cannot be written did when seals
    /// were written here.
    fn seal_if_due(&mut self) {
        let due = self.sealing.is_none()
            && (self.log.open.as_ref()).is_some_and(|seg| Instant::now() >= seg.seal_at);
        if due {
            self.close();
        }
    }

    /// Closes the open segment, unless it holds no record: the next batch
    /// opens the next segment, named by its first seq, and the writer
    /// thread fsyncs this one and writes its seal outside the mutex
    /// (`on_timer`). A seal's fsyncs and signature held every request up
    /// for milliseconds when the request that filled the segment wrote it,
    /// and for as long as the disk took when it was busy.
    fn close(&mut self) {
        let Some(seg) = (self.log.open).take_if(|seg| seg.span.records > 0) else {
            return;
        };
        let last_seq = self.next_seq - 1;
        let seal = self.seal_of(&seg.span, last_seq, &self.prev);
        self.await_seal(Sealing {
            segment: SegmentSync {
                file: seg.file,
                path: seg.path,
                named: seg.named,
            },
            seal,
            // With `fsync = "always"` every batch was fsynced.
            synced: self.synced_seq == last_seq,
            due: Instant::now(),
        });
    }

    fn await_seal(&mut self, sealing: Sealing) {
        self.sealing = Some(sealing);
        self.stats.awaiting_seal.store(1, Relaxed);
    }

    /// What the seal of a segment of `span`, ending with record `last_seq`
    /// of hash `last_hash`, says, but for when it is signed.
    fn seal_of(&self, span: &Span, last_seq: u64, last_hash: &str) -> Seal {
        Seal {
            instance: self.instance.clone(),
            segment: chain::segment_name(span.first_seq),
            first_seq: span.first_seq,
            last_seq,
            records: span.records,
            min_ts: span.min_ts.clone(),
            max_ts: span.max_ts.clone(),
            prev: span.prev.clone(),
            last_hash: last_hash.to_owned(),
            sealed_at: String::new(),
            key_id: self.key_id(),
        }
    }

    /// The seal of the closed segment, signed now, and the segment to
    /// fsync first unless that is done.
    fn seal_work(&self, sealing: &Sealing) -> io::Result<SealWork> {
        let segment = &sealing.segment;
        let sync =
            (!sealing.synced).then(|| SegmentSync::of(&segment.file, &segment.path, segment.named));
        Ok(SealWork {
            sync: sync.transpose()?,
            publish: Publish {
                path: seal::seal_path(&segment.path),
                statement: Statement::Seal(Seal {
                    sealed_at: timestamp(OffsetDateTime::now_utc()),
                    ..sealing.seal.clone()
                }),
                signer: self.signer.clone(),
            },
        })
    }

    /// The end of the closed segment's fsync.
    fn closed_synced(&mut self, synced: io::Result<()>) {
        let Some(sealing) = &mut self.sealing else {
            return;
        };
        let last_seq = sealing.seal.last_seq;
        match synced {
            Ok(()) => {
                sealing.synced = true;
                self.stats.fsyncs_total.fetch_add(1, Relaxed);
                // The segments before it were sealed, so fsynced, already.
                self.synced_to(last_seq);
            }
            Err(e) => {
                sealing.due = Instant::now() + RETRY_AFTER;
                self.fail(&e);
            }
        }
    }

    /// The end of the closed segment's seal: done, or to be tried again
    /// after a while.
    fn sealed(&mut self, published: bool) {
        if published {
            self.stats.seals_total.fetch_add(1, Relaxed);
            self.stats.awaiting_seal.store(0, Relaxed);
            self.sealing = None;
        } else if let Some(sealing) = &mut self.sealing {
            sealing.due = Instant::now() + RETRY_AFTER;
        }
    }

    /// Fsyncs the closed segment if need be and writes its seal, here and
    /// now (when the writer stops). Whether no segment is left waiting.
    fn seal_closed_now(&mut self) -> bool {
        let Some(sealing) = &self.sealing else {
            return true;
        };
        if !sealing.synced {
            let synced = sealing.segment.run();
            self.closed_synced(synced);
        }
        let work = match self
            .sealing
            .as_ref()
            .filter(|s| s.synced)
            .map(|s| self.seal_work(s))
        {
            Some(Ok(work)) => work,
            Some(Err(e)) => {
                self.fail(&e);
                return false;
            }
            None => return false,
        };
        let published = self.publish(&work.publish.path, &work.publish.statement);
        self.sealed(published);
        published
    }

    /// Writes a last checkpoint, when records came since the last one.
    fn final_checkpoint(&mut self) {
        let last = self.next_seq - 1;
        if last == self.checkpointed_seq || !self.all_synced() {
            return;
        }
        let statement = self.checkpoint();
        if self.publish(&self.log.dir.join(CHECKPOINT_FILE), &statement) {
            self.checkpointed(last);
        }
    }

    /// A checkpoint of the last record written.
    fn checkpoint(&self) -> Statement {
        Statement::Checkpoint(Checkpoint {
            instance: self.instance.clone(),
            segment: chain::segment_name(self.tip_segment),
            seq: self.next_seq - 1,
            hash: self.prev.clone(),
            ts: timestamp(OffsetDateTime::now_utc()),
            key_id: self.key_id(),
        })
    }

    fn checkpointed(&mut self, seq: u64) {
        self.stats.checkpoints_total.fetch_add(1, Relaxed);
        self.checkpointed_seq = seq;
    }

    fn key_id(&self) -> Option<String> {
        self.signer.as_ref().map(|s| s.id.clone())
    }

    fn publish(&self, path: &Path, statement: &Statement) -> bool {
        publish(path, statement, self.signer.as_deref(), &self.stats)
    }

    fn fail(&mut self, e: &io::Error) {
        self.stats.write_errors_total.fetch_add(1, Relaxed);
        self.last_failure = Instant::now();
        if self.stats.healthy.swap(false, Relaxed) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }
}

/// The writer thread: the batches of `fsync = "always"`, the clock, and
/// the stop.
async fn run(log: Shared, stats: Arc<AuditStats>, mut rx: mpsc::Receiver<Msg>, max_batch: usize) {
    let mut batch = Vec::new();
    let mut done = Vec::new();
    loop {
        let plan = tick(&log).and_then(|()| {
            drain(&log, &stats);
            plan(&log)
        });
        let msg = match plan {
            // The log is gone (a panic poisoned it).
            None => break,
            // More is queued: only look for a shutdown before going on.
            Some(Plan::Drain) => match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::error::TryRecvError::Empty) => continue,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            },
            Some(Plan::Sleep(Some(at))) => {
                match tokio::time::timeout_at(at.into(), rx.recv()).await {
                    Ok(msg) => msg,
                    Err(_) => continue,
                }
            }
            Some(Plan::Sleep(None)) => rx.recv().await,
        };
        // `None`: every handle is gone.
        let Some(msg) = msg else { break };
        route(msg, &mut batch, &mut done);
        for _ in 1..max_batch {
            let Ok(msg) = rx.try_recv() else { break };
            route(msg, &mut batch, &mut done);
        }
        if !done.is_empty() {
            // Whatever is still queued was sent before the caller saw the
            // shutdown finish: write it too.
            rx.close();
            while let Ok(msg) = rx.try_recv() {
                route(msg, &mut batch, &mut done);
            }
        }
        if !batch.is_empty() {
            let Some(mut guard) = lock(&log.log) else {
                break;
            };
            let Some(writer) = guard.as_mut() else { break };
            writer
                .stats
                .queue_depth
                .fetch_sub(batch.len() as u64, Relaxed);
            let _ = writer.commit(&mut batch);
        }
        if !done.is_empty() {
            break;
        }
    }
    // Stopping: shutdown was asked for, or every handle is gone. Taken out
    // of the mutex, so that requests from now on are refused, and dropped
    // before anyone hears that the shutdown is done and starts a new writer
    // on the log.
    while drain(&log, &stats) {}
    let writer = lock(&log.log).and_then(|mut log| log.take());
    close_inbox(&log, &stats);
    if let Some(writer) = writer {
        writer.stop(!done.is_empty());
    }
    for d in done {
        let _ = d.send(());
    }
}

/// Writes a seal or checkpoint. A failure is counted and left to be tried
/// again; it does not make the log unhealthy, as the records are written.
fn publish(
    path: &Path,
    statement: &Statement,
    signer: Option<&Signer>,
    stats: &AuditStats,
) -> bool {
    match seal::write(path, statement, signer) {
        Ok(()) => true,
        Err(e) => {
            stats.seal_errors_total.fetch_add(1, Relaxed);
            tracing::warn!(file = %path.display(), error = %e, "cannot write an audit seal or checkpoint");
            false
        }
    }
}

/// What the writer thread does outside the mutex (see `on_timer`).
struct Background {
    /// The closed segment's fsync and seal.
    seal: Option<SealWork>,
    /// The open segment, to fsync.
    sync: Option<SegmentSync>,
    /// The last record written when this was planned.
    seq: u64,
    /// A checkpoint vouching for `seq`, once it is on disk.
    checkpoint: Option<Publish>,
}

struct Publish {
    path: PathBuf,
    statement: Statement,
    signer: Option<Arc<Signer>>,
}

/// A closed segment, waiting for its seal. The segment after it is open
/// meanwhile: `audit verify` accepts the segment before the newest
/// unsealed, since a crash can leave it so, and the next start seals it.
struct Sealing {
    /// The segment, to fsync before the seal vouches for it.
    segment: SegmentSync,
    /// What the seal says, but for `sealed_at`: when it is signed.
    seal: Seal,
    /// Whether its records are on disk.
    synced: bool,
    /// When the writer thread is to write the seal (again).
    due: Instant,
}

/// A seal to write: the segment to fsync, unless that is done, then the
/// seal.
struct SealWork {
    sync: Option<SegmentSync>,
    publish: Publish,
}

/// Does what is due on the clock; `None` when the log is gone (a panic
/// poisoned it).
fn tick(log: &Shared) -> Option<()> {
    let mut guard = lock(&log.log)?;
    if let Some(work) = guard.as_mut()?.on_timer() {
        drop(guard);
        // The closed segment first: the open one's records follow its.
        let closed = (work.seal.as_ref())
            .and_then(|seal| seal.sync.as_ref())
            .map(SegmentSync::run);
        let synced = work.sync.as_ref().map(SegmentSync::run);
        guard = lock(&log.log)?;
        let writer = guard.as_mut()?;
        if let Some(closed) = closed {
            writer.closed_synced(closed);
        }
        if let Some((sync, synced)) = work.sync.zip(synced) {
            writer.batch_synced(work.seq, &sync.path, synced);
        }
        if let Some(seal) =
            (work.seal).filter(|_| writer.sealing.as_ref().is_some_and(|s| s.synced))
        {
            let stats = writer.stats.clone();
            drop(guard);
            let p = &seal.publish;
            let published = publish(&p.path, &p.statement, p.signer.as_deref(), &stats);
            guard = lock(&log.log)?;
            guard.as_mut()?.sealed(published);
        }
        let writer = guard.as_mut()?;
        // A failed fsync leaves the checkpoint to the next interval.
        if let Some(cp) = work.checkpoint.filter(|_| writer.synced_seq >= work.seq) {
            let stats = writer.stats.clone();
            drop(guard);
            let published = publish(&cp.path, &cp.statement, cp.signer.as_deref(), &stats);
            guard = lock(&log.log)?;
            if published {
                guard.as_mut()?.checkpointed(work.seq);
            }
        }
    }
    Some(())
}

/// What the writer thread does next.
enum Plan {
    /// Sleep until then (or until woken); `None`: until woken.
    Sleep(Option<Instant>),
    /// Write what was queued while nobody was writing, first.
    Drain,
}

/// Plans the thread's sleep as its last step, after every write of its
/// own, so that the wake it plans covers them: a write by the thread moves
/// the fsync it must wake for. Whether completions may park follows from
/// that wake, and is set under the inbox's lock together with a last look
/// at the queue, so that no completion parked before it was cleared is
/// left to wait for a wake that is not planned.
fn plan(log: &Shared) -> Option<Plan> {
    let mut guard = lock(&log.log)?;
    let writer = guard.as_mut()?;
    let at = writer.wake_at();
    writer.thread_wakes_at = at;
    let mut inbox = lock(&log.inbox)?;
    inbox.parking = writer.parks_completions();
    Some(if !inbox.writing && !inbox.queue.is_empty() {
        Plan::Drain
    } else {
        Plan::Sleep(at)
    })
}

/// Writes what request tasks left queued, unless one of them is writing;
/// whether some is queued still.
fn drain(core: &Core, stats: &AuditStats) -> bool {
    let Some(mut inbox) = lock(&core.inbox) else {
        return false;
    };
    if inbox.writing || inbox.queue.is_empty() {
        return false;
    }
    inbox.writing = true;
    let batch = std::mem::take(&mut inbox.queue);
    stats.queue_depth.fetch_sub(batch.len() as u64, Relaxed);
    drop(inbox);
    // Failures are counted, and the queued decisions answered, by the
    // writer; nobody here waits for an answer.
    let _ = write_rounds(core, stats, batch, MAX_ROUNDS);
    lock(&core.inbox).is_some_and(|inbox| !inbox.writing && !inbox.queue.is_empty())
}

/// Refuses what is queued once the log has stopped. A task that still
/// writes refuses what comes after (it sees the log stopped), but may have
/// left records before it saw that: they are refused once it is done.
fn close_inbox(core: &Core, stats: &AuditStats) {
    loop {
        let Some(mut inbox) = lock(&core.inbox) else {
            return;
        };
        if !inbox.writing {
            stats
                .queue_depth
                .fetch_sub(inbox.queue.len() as u64, Relaxed);
            refuse(&mut inbox.queue, stats);
            return;
        }
        drop(inbox);
        std::thread::yield_now();
    }
}

fn route(msg: Msg, batch: &mut Vec<(Unchained, Reply)>, done: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Record(rec, reply) => batch.push((rec, reply)),
        Msg::Wake => {}
        Msg::Shutdown(d) => done.push(d),
    }
}

/// The segment being appended to, and where its good bytes end.
struct Segment {
    file: File,
    path: PathBuf,
    len: u64,
    span: Span,
    /// When it is to be sealed: once old (or now, once full).
    seal_at: Instant,
    /// Whether its name is on disk: the directory was fsynced since it
    /// was made, or need not be (`fsync = "never"`).
    named: bool,
}

impl Segment {
    /// fsyncs it here and now (see [`SegmentSync`]).
    fn sync(&mut self) -> io::Result<()> {
        sync_segment(&self.file, &self.path, self.named)?;
        self.named = true;
        Ok(())
    }
}

/// A segment to fsync: its data, and first the directory unless its name
/// is on disk already. A new segment's directory fsync is left to the
/// first fsync that vouches for its records: made where the segment is
/// made, it held up the request that started it for as long as the seal
/// of the segment before (fsyncing meanwhile) took.
struct SegmentSync {
    file: File,
    path: PathBuf,
    named: bool,
}

impl SegmentSync {
    fn of(file: &File, path: &Path, named: bool) -> io::Result<SegmentSync> {
        Ok(SegmentSync {
            file: file.try_clone()?,
            path: path.to_owned(),
            named,
        })
    }

    fn run(&self) -> io::Result<()> {
        sync_segment(&self.file, &self.path, self.named)
    }
}

fn sync_segment(file: &File, path: &Path, named: bool) -> io::Result<()> {
    if !named {
        let dir = path
            .parent()
            .expect("a segment lies in the log's directory");
        File::open(dir)?.sync_all()?;
    }
    file.sync_data()
}

/// What a segment's seal will say about it; grows with each good batch.
#[derive(Debug)]
struct Span {
    first_seq: u64,
    /// What its first record links to.
    prev: String,
    records: u64,
    min_ts: String,
    max_ts: String,
}

impl Span {
    fn new(first_seq: u64, prev: &str) -> Span {
        Span {
            first_seq,
            prev: prev.to_owned(),
            records: 0,
            min_ts: String::new(),
            max_ts: String::new(),
        }
    }

    fn add<'a>(&mut self, ts: impl Iterator<Item = &'a str>) {
        for ts in ts {
            if self.records == 0 || ts < self.min_ts.as_str() {
                ts.clone_into(&mut self.min_ts);
            }
            if self.records == 0 || ts > self.max_ts.as_str() {
                ts.clone_into(&mut self.max_ts);
            }
            self.records += 1;
        }
    }
}

struct Log {
    dir: PathBuf,
    /// fsync the directory before a new segment's first fsync, so that the
    /// file's name is as durable as its contents.
    sync_dir: bool,
    /// `segment_max_age`.
    max_age: Duration,
    open: Option<Segment>,
    /// The segment a failed write left behind, cut back to its good length.
    broken: Option<Segment>,
}

impl Log {
    /// The segment to append to: the open one; else the one a failure left
    /// behind, reopened and cut back to its good length; else a new one
    /// whose first record is `first_seq` after `prev`, also when the old
    /// one vanished or was cut short by someone else (the gap then shows in
    /// verification, as it should).
    fn open(&mut self, first_seq: u64, prev: &str) -> io::Result<&mut Segment> {
        let seg = match (self.open.take(), self.broken.take()) {
            (Some(seg), _) => seg,
            (None, Some(seg)) => match reopen(&seg.path, seg.len) {
                Ok(Some(file)) => Segment { file, ..seg },
                Ok(None) => self.create(first_seq, prev)?,
                Err(e) => {
                    self.broken = Some(seg);
                    return Err(e);
                }
            },
            (None, None) => self.create(first_seq, prev)?,
        };
        Ok(self.open.insert(seg))
    }

    fn create(&self, first_seq: u64, prev: &str) -> io::Result<Segment> {
        let path = self.dir.join(chain::segment_name(first_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not empty", path.display()),
            ));
        }
        Ok(Segment {
            file,
            path,
            len: 0,
            span: Span::new(first_seq, prev),
            seal_at: Instant::now() + self.max_age,
            named: !self.sync_dir,
        })
    }

    /// Drops the open segment after a failed write, cutting what the write
    /// may have left; `open` checks the length again before writing.
    fn rollback(&mut self) {
        if let Some(seg) = self.open.take() {
            let _ = seg.file.set_len(seg.len);
            self.broken = Some(seg);
        }
    }
}

/// The segment at `path` opened for appending, cut back to `len`; `None`
/// when it is gone or shorter than `len`.
fn reopen(path: &Path, len: u64) -> io::Result<Option<File>> {
    let file = match OpenOptions::new().append(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let actual = file.metadata()?.len();
    if actual < len {
        return Ok(None);
    }
    if actual > len {
        file.set_len(len)?;
    }
    Ok(Some(file))
}

/// The end of a segment as recovery sees it.
struct Tail {
    /// Where the last good record ends (after the cut).
    good_len: u64,
    last: Option<Link>,
    /// Why bytes after `good_len` are to be cut.
    cut: Option<String>,
}

/// Reads back only as far as needed: the torn bytes after the last newline,
/// the last line, and the line before it.
fn read_tail(file: &File, path: &Path) -> io::Result<Tail> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut buf = Vec::new();
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() < 3 {
        let n = CHUNK.min(start);
        start -= n;
        let mut chunk = vec![0; n as usize];
        file.read_exact_at(&mut chunk, start)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let after_last_newline = |end: usize| {
        buf[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    };
    let mut end = after_last_newline(buf.len());
    let torn = buf.len() - end;
    let mut bad_line = None;
    let mut last = None;
    // With three newlines in `buf` (or all of the file), both lines looked
    // at here are whole.
    while end > 0 {
        let line_start = after_last_newline(end - 1);
        match chain::check_line(&buf[line_start..end - 1]) {
            Ok(link) => {
                last = Some(link);
                break;
            }
            Err(LineError::Malformed(why)) if bad_line.is_none() => {
                bad_line = Some(why);
                end = line_start;
            }
            Err(LineError::Malformed(why)) => {
                return Err(damaged(
                    path,
                    &format!("its two last lines are not records ({why})"),
                ));
            }
            Err(LineError::HashMismatch { seq }) => {
                return Err(damaged(
                    path,
                    &format!("record {seq} does not match its hash"),
                ));
            }
        }
    }
    let cut = match (bad_line, torn) {
        (None, 0) => None,
        (None, torn) => Some(format!("torn write: {torn} bytes without a newline")),
        (Some(why), 0) => Some(format!("torn write: last line not a record ({why})")),
        (Some(why), torn) => Some(format!(
            "torn write: last line not a record ({why}), then {torn} bytes without a newline"
        )),
    };
    Ok(Tail {
        good_len: start + end as u64,
        last,
        cut,
    })
}

/// The span of a segment that recovery found unsealed, read through: every
/// record must match its hash and follow the one before. `prev` is where
/// the chain ends, for a segment without records. Also its last record.
fn read_span(path: &Path, first_seq: u64, prev: &str) -> io::Result<(Span, Option<Link>)> {
    let mut span = Span::new(first_seq, prev);
    let mut last: Option<Link> = None;
    for (i, line) in BufReader::new(File::open(path)?).split(b'\n').enumerate() {
        let link = chain::check_line(&line?).map_err(|e| {
            damaged(
                path,
                &format!("line {} is not a good record ({e:?})", i + 1),
            )
        })?;
        let follows = match &last {
            Some(before) => link.seq == before.seq + 1 && link.prev == before.hash,
            None => link.seq == first_seq,
        };
        if !follows {
            return Err(damaged(
                path,
                &format!("record {} does not follow the one before it", link.seq),
            ));
        }
        if last.is_none() {
            span.prev.clone_from(&link.prev);
        }
        span.add(std::iter::once(link.ts.as_str()));
        last = Some(link);
    }
    Ok((span, last))
}

fn damaged(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "audit log {} is damaged beyond a torn write: {why}; refusing to append (run `gatekeeper audit verify`)",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{completion, config, decide_in_tasks, decision, verify_chain};
    use futures_util::FutureExt;

    /// While one task writes, records offered by others wait in the inbox
    /// and go out in its next round: one `write(2)` for all of them.
    #[tokio::test]
    async fn records_offered_while_another_task_writes_share_its_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
        lock(&audit.log.inbox).unwrap().writing = true;
        for i in 0..2 {
            assert!(audit.try_completion(completion(i)).is_none());
        }
        let decisions: Vec<_> = (0..3)
            .map(|i| {
                let audit = audit.clone();
                tokio::spawn(async move { audit.decision(decision(i)).await })
            })
            .collect();
        while audit.stats.queue_depth.load(Relaxed) < 5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(audit.stats.records_total.load(Relaxed), 0);

        // The writing task ends its round and takes the queue.
        let (written, _) = write_rounds(&audit.log, &audit.stats, Vec::new(), MAX_ROUNDS);
        assert_eq!(written.unwrap(), None);
        let mut seqs = Vec::new();
        for d in decisions {
            seqs.push(d.await.unwrap().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, [3, 4, 5]);
        let stats = &audit.stats;
        assert_eq!(stats.records_total.load(Relaxed), 5);
        assert_eq!(stats.writes_total.load(Relaxed), 1);
        assert_eq!(stats.queue_depth.load(Relaxed), 0);
        assert!(!lock(&audit.log.inbox).unwrap().writing);
        // The next record is written by its own task at once.
        assert_eq!(audit.decision(decision(9)).await.unwrap().seq, 6);
        audit.shutdown().await;
        let summary = verify_chain(dir.path()).unwrap();
        assert_eq!(summary.records, 6);
    }

    /// On one worker nobody writes while another task does, yet the
    /// decisions of tasks that are ready together go out in one write:
    /// the first yields before writing and takes the others along.
    #[tokio::test]
    async fn decisions_of_tasks_ready_together_share_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
        assert_eq!(decide_in_tasks(&audit, 0..5).await, [1, 2, 3, 4, 5]);
        let stats = &audit.stats;
        assert_eq!(stats.writes_total.load(Relaxed), 1);
        assert_eq!(stats.queue_depth.load(Relaxed), 0);
        // Alone, a decision still has its write at once.
        assert_eq!(audit.decision(decision(9)).await.unwrap().seq, 6);
        assert_eq!(stats.writes_total.load(Relaxed), 2);
        audit.shutdown().await;
        assert_eq!(verify_chain(dir.path()).unwrap().records, 6);
    }

    /// A decision's task cancelled while it gathers still writes what it
    /// gathered, its own record included, and leaves the log unclaimed.
    #[tokio::test]
    async fn a_gathering_dropped_before_it_wrote_writes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
        let mut first = Box::pin(audit.decision(decision(0)));
        // Polled once: it claims the write and yields.
        assert!(first.as_mut().now_or_never().is_none());
        assert!(audit.try_completion(completion(0)).is_none());
        assert_eq!(audit.stats.records_total.load(Relaxed), 0);
        drop(first);
        assert_eq!(audit.stats.records_total.load(Relaxed), 2);
        assert!(!lock(&audit.log.inbox).unwrap().writing);
        assert_eq!(audit.decision(decision(1)).await.unwrap().seq, 3);
        audit.shutdown().await;
        assert_eq!(verify_chain(dir.path()).unwrap().records, 3);
    }

    /// A completion parked after the last decision is written by the
    /// thread when it wakes for the fsync; that write must get an fsync of
    /// its own, not wait for the next checkpoint (here, an hour away).
    #[tokio::test]
    async fn what_the_thread_writes_for_parked_completions_is_fsynced_too() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(AuditConfig {
            batch_ms: 200,
            checkpoint_interval: Duration::from_secs(3600),
            ..config(dir.path(), FsyncMode::Batch, 1 << 20)
        })
        .unwrap();
        let stats = &audit.stats;
        assert_eq!(audit.decision(decision(0)).await.unwrap().seq, 1);
        // The decision woke the thread to plan its fsync; the completion is
        // to park once it sleeps again, so that the thread finds it only
        // when it wakes for that fsync. (Parked sooner, the thread writes
        // it at once and the test proves less, but does not fail.)
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(audit.try_completion(completion(0)).is_none());
        assert_eq!(stats.records_total.load(Relaxed), 1, "parked");
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.synced_seq.load(Relaxed) < 2 {
            assert!(
                Instant::now() < deadline,
                "the parked completion was never fsynced"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        audit.shutdown().await;
        let summary = verify_chain(dir.path()).unwrap();
        assert_eq!(summary.records, 2);
    }

    /// Many tasks on two threads: every decision gets its own seq, and the
    /// chain holds, however the writes were shared out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_on_two_threads_write_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let audit = audit.clone();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..50 {
                        seqs.push(audit.decision(decision(t * 100 + i)).await.unwrap().seq);
                    }
                    seqs
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.extend(task.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=3200).collect::<Vec<_>>());
        audit.shutdown().await;
        let summary = verify_chain(dir.path()).unwrap();
        assert_eq!(summary.records, 3200);
    }
}
