//! Summaries of repeated measurements: median and spread.

use serde::{Deserialize, Serialize};

/// Median, extremes, mean and standard deviation of `n` samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// The middle sample (mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// The sample standard deviation (0 for one sample).
    pub stddev: f64,
    /// How many samples.
    pub n: usize,
}

impl Stat {
    /// The summary of these samples; `None` when there are none or one is not finite.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            median: percentile(&sorted, 50.0),
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            stddev: var.sqrt(),
            n,
        })
    }

    /// The spread as a percentage of the median: `(max - min) / median`.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            100.0 * (self.max - self.min) / self.median
        }
    }

    /// `median ±spread%` for a table cell.
    pub fn cell(&self, decimals: usize) -> String {
        format!("{:.*} ±{:.0}%", decimals, self.median, self.spread_pct())
    }
}

/// The `p`-th percentile (0–100) of sorted samples, linearly interpolated.
///
/// Returns NaN for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Sorts a copy and takes the `p`-th percentile.
pub fn percentile_of(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians() {
        let s = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert!((s.stddev - 1.0).abs() < 1e-12);
        let s = Stat::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(s.mean, 2.5);
    }

    #[test]
    fn one_sample_has_no_spread() {
        let s = Stat::of(&[7.0]).unwrap();
        assert_eq!((s.median, s.stddev, s.spread_pct()), (7.0, 0.0, 0.0));
        assert_eq!(s.cell(1), "7.0 ±0%");
    }

    #[test]
    fn empty_or_nan_is_none() {
        assert!(Stat::of(&[]).is_none());
        assert!(Stat::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!((percentile(&v, 95.0) - 95.05).abs() < 1e-9);
        assert_eq!(percentile_of(&[5.0, 1.0, 3.0], 50.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
