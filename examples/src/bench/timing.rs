//! Timing: many iterations after a warm-up, summarised as median and percentiles.
//!
//! Each iteration is timed on its own (`Instant` costs ~20 ns, far below the
//! microseconds measured here), so the summary shows the spread, not just a mean
//! that one descheduling of the process would drag up. Medians are what the report
//! compares: on a shared two-core machine they are the stable statistic.

use std::time::{Duration, Instant};

/// How long to measure one case.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Untimed runs first (connections, caches and branch predictors warm up).
    pub warmup: usize,
    /// Timed runs, at least.
    pub iterations: usize,
    /// Stop adding runs after this long, once `min_iterations` are done.
    pub max_time: Duration,
    pub min_iterations: usize,
}

impl Budget {
    pub fn new(warmup: usize, iterations: usize, max_time: Duration) -> Budget {
        Budget { warmup, iterations, max_time, min_iterations: (iterations / 10).max(3) }
    }
}

/// The distribution of one case's per-iteration times, in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub iterations: usize,
    pub median_ns: f64,
    pub p10_ns: f64,
    pub p90_ns: f64,
    pub p99_ns: f64,
    pub mean_ns: f64,
}

impl Summary {
    /// Summarises raw samples (nanoseconds). `None` for no samples.
    pub fn of(mut samples: Vec<f64>) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let mean_ns = samples.iter().sum::<f64>() / samples.len() as f64;
        Some(Summary {
            iterations: samples.len(),
            median_ns: percentile(&samples, 0.5),
            p10_ns: percentile(&samples, 0.1),
            p90_ns: percentile(&samples, 0.9),
            p99_ns: percentile(&samples, 0.99),
            mean_ns,
        })
    }

    pub fn median_us(&self) -> f64 {
        self.median_ns / 1000.0
    }
}

/// Linear interpolation between the closest ranks of sorted `samples`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            let frac = rank - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Runs `f` `budget.warmup` times untimed, then times each further run. The first
/// error stops the measurement and is returned.
pub fn measure<E>(budget: Budget, mut f: impl FnMut() -> Result<(), E>) -> Result<Summary, E> {
    for _ in 0..budget.warmup {
        f()?;
    }
    let mut samples = Vec::with_capacity(budget.iterations);
    let started = Instant::now();
    while samples.len() < budget.iterations {
        if samples.len() >= budget.min_iterations && started.elapsed() > budget.max_time {
            break;
        }
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_nanos() as f64);
    }
    // At least one sample exists: `min_iterations` ≥ 1 runs happen before the time
    // limit may stop the loop, and `iterations` ≥ 1 is checked by the callers' configs.
    Ok(Summary::of(samples).unwrap_or(Summary {
        iterations: 0,
        median_ns: f64::NAN,
        p10_ns: f64::NAN,
        p90_ns: f64::NAN,
        p99_ns: f64::NAN,
        mean_ns: f64::NAN,
    }))
}

/// [`measure`], and the CPU time this process spent per run (warm-up runs
/// included), in nanoseconds, or `None` where `/proc` cannot say.
pub fn measure_with_cpu<E>(budget: Budget, f: impl FnMut() -> Result<(), E>) -> Result<(Summary, Option<f64>), E> {
    let before = super::cpu_split::own_cpu_ns().ok();
    let summary = measure(budget, f)?;
    let after = super::cpu_split::own_cpu_ns().ok();
    let runs = (budget.warmup + summary.iterations).max(1) as f64;
    let cpu = before.zip(after).map(|(b, a)| a.saturating_sub(b) as f64 / runs);
    Ok((summary, cpu))
}

/// Times runs that are too short to time one by one (tens of nanoseconds): each
/// sample is a batch of `batch` runs, divided by `batch`.
pub fn measure_batched<E>(budget: Budget, batch: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Summary, E> {
    let batch = batch.max(1);
    let summary = measure(budget, || {
        for _ in 0..batch {
            f()?;
        }
        Ok(())
    })?;
    let per = |x: f64| x / batch as f64;
    Ok(Summary {
        iterations: summary.iterations * batch,
        median_ns: per(summary.median_ns),
        p10_ns: per(summary.p10_ns),
        p90_ns: per(summary.p90_ns),
        p99_ns: per(summary.p99_ns),
        mean_ns: per(summary.mean_ns),
    })
}

/// A duration in the unit that keeps 3 significant digits readable.
pub fn format_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "–".to_owned()
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

/// `a / b` as `1.23x`.
pub fn format_ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite()) || b == 0.0 { "–".to_owned() } else { format!("{:.2}x", a / b) }
}

/// One case of an interleaved comparison: a run of it, or why it could not be set up.
pub type Probe<'a> = Result<Box<dyn FnMut() -> Result<(), String> + 'a>, String>;

/// Runs of each case in one round before the next case's: long enough to keep each
/// case's connections and caches warm, short enough that a change of machine load
/// (another process, a frequency step) hits every case alike.
pub const INTERLEAVE_ROUND: usize = 50;

/// Times every probe, interleaved in rounds of [`INTERLEAVE_ROUND`] runs, until each
/// has `budget.iterations` samples or the time is up (after `min_iterations`). A
/// probe that fails is dropped from the rounds and reported with its error.
pub fn measure_interleaved(budget: Budget, probes: Vec<Probe<'_>>) -> Vec<Result<Summary, String>> {
    let mut probes = probes;
    let mut samples: Vec<Result<Vec<f64>, String>> = probes
        .iter_mut()
        .map(|probe| {
            let run = probe.as_mut().map_err(|e| e.clone())?;
            (0..budget.warmup).try_for_each(|_| run())?;
            Ok(Vec::with_capacity(budget.iterations))
        })
        .collect();
    let started = Instant::now();
    let mut done = 0;
    while done < budget.iterations && !(done >= budget.min_iterations && started.elapsed() > budget.max_time) {
        let n = INTERLEAVE_ROUND.min(budget.iterations - done);
        for (probe, kept) in probes.iter_mut().zip(&mut samples) {
            let (Ok(run), Ok(list)) = (probe.as_mut(), kept.as_mut()) else { continue };
            for _ in 0..n {
                let t = Instant::now();
                if let Err(e) = run() {
                    *kept = Err(e);
                    break;
                }
                list.push(t.elapsed().as_nanos() as f64);
            }
        }
        done += n;
    }
    samples.into_iter().map(|s| s.and_then(|v| Summary::of(v).ok_or_else(|| "no samples".to_owned()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&s, 0.5), 3.0);
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert_eq!(percentile(&s, 1.0), 5.0);
        assert_eq!(percentile(&s, 0.125), 1.5);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn summary_sorts_before_ranking() {
        let s = Summary::of(vec![5.0, 1.0, 3.0]).expect("three samples");
        assert_eq!((s.median_ns, s.p10_ns, s.iterations), (3.0, 1.4, 3));
        assert_eq!(Summary::of(Vec::new()), None);
    }

    #[test]
    fn units_and_ratios_format() {
        assert_eq!(format_ns(950.0), "950 ns");
        assert_eq!(format_ns(12_340.0), "12.3 µs");
        assert_eq!(format_ns(2_500_000.0), "2.50 ms");
        assert_eq!(format_ratio(3.0, 2.0), "1.50x");
        assert_eq!(format_ratio(1.0, 0.0), "–");
    }
}
