//! Being gentle on a production node: a global read-rate limit shared by
//! all hashing threads, CPU niceness and the idle I/O scheduling class.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Caps the bytes read per second across all threads. Each reader adds what
/// it read and sleeps until the running total is back under the budget, so
/// the average rate over the run never exceeds the limit by more than one
/// read buffer per thread.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    start: Instant,
    consumed: AtomicU64,
}

/// Accepted `--max-read-rate` values (MB/s), besides 0 (unlimited).
pub const MIN_RATE_MB: f64 = 0.001;
/// The largest accepted rate: 1 TB/s, far above any disk.
pub const MAX_RATE_MB: f64 = 1_000_000.0;

impl RateLimit {
    /// `mb_per_sec` in MB/s (10^6 bytes), within
    /// `MIN_RATE_MB..=MAX_RATE_MB`; anything else is an error.
    pub fn new(mb_per_sec: f64) -> Result<RateLimit, String> {
        if !(MIN_RATE_MB..=MAX_RATE_MB).contains(&mb_per_sec) {
            return Err(format!(
                "--max-read-rate {mb_per_sec} is out of range: give 0 (unlimited) or {MIN_RATE_MB} to {MAX_RATE_MB} MB/s"
            ));
        }
        Ok(RateLimit {
            bytes_per_sec: mb_per_sec * 1e6,
            start: Instant::now(),
            consumed: AtomicU64::new(0),
        })
    }

    pub fn consume(&self, n: u64) {
        let total = self
            .consumed
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        // u64 → f64 loses precision only beyond 9 PB.
        #[allow(clippy::cast_precision_loss)]
        let secs = total as f64 / self.bytes_per_sec;
        // In range by construction (at least 1 kB/s: at most 1.8e16 s);
        // never panic on an impossible value, just do not sleep.
        let Ok(due) = Duration::try_from_secs_f64(secs) else {
            return;
        };
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Lowers this thread's CPU priority (threads started later inherit it, so
/// call it before the thread pool starts).
pub fn set_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority only reads its integer arguments; `who == 0` is the
    // calling thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Puts this thread (and threads started later) in the idle I/O class: it
/// only gets disk time when no one else wants it (CFQ/BFQ; with `none` or
/// `mq-deadline` schedulers the kernel accepts but ignores it).
pub fn set_io_idle() -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_holds_the_average() {
        let rl = RateLimit::new(10.0).expect("rate"); // 10 MB/s
        let t = Instant::now();
        for _ in 0..10 {
            rl.consume(200_000); // 2 MB in total → at least 0.2 s
        }
        let s = t.elapsed().as_secs_f64();
        assert!(s >= 0.19, "2 MB at 10 MB/s took only {s} s");
    }

    #[test]
    fn out_of_range_rates_are_errors() {
        for r in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(RateLimit::new(r).is_err(), "{r}");
        }
        let rl = RateLimit::new(MIN_RATE_MB).expect("min");
        rl.consume(0);
        assert!(RateLimit::new(MAX_RATE_MB).is_ok());
    }

    #[test]
    fn priorities_can_be_lowered() {
        // Both only lower priority, which any user may do.
        std::thread::spawn(|| {
            set_nice(5).expect("nice");
            set_io_idle().expect("ioprio");
        })
        .join()
        .expect("thread");
    }
}
