//! Tuning estimate: the deviation of the recording's A4 from 440 Hz, in cents, as the circular
//! mean of the semitone deviations of spectral peaks (weighted by magnitude).

use super::stft::PowerSpectrum;
use super::FeatureConfig;

/// Window for the tuning analysis (samples at the analysis rate): long, for fine frequency
/// resolution; time resolution does not matter here.
const TUNING_WINDOW: usize = 8192;
/// At most this many windows are analysed, spread evenly over the signal.
const MAX_WINDOWS: usize = 300;
const MIN_PEAK_HZ: f64 = 100.0;
const MAX_PEAK_HZ: f64 = 4000.0;

/// Estimate the tuning of `samples` (at `cfg.sample_rate_hz`) in cents, in [-50, 50).
/// Returns 0 when there is too little tonal material to tell.
pub fn estimate_tuning_cents(samples: &[f32], cfg: &FeatureConfig) -> f32 {
    let mut acc = TuningAccumulator::new(cfg.sample_rate_hz);
    let n = TUNING_WINDOW;
    if samples.len() < n {
        return 0.0;
    }
    let count = ((samples.len() - n) / (n / 2) + 1).min(MAX_WINDOWS);
    let step = if count > 1 {
        (samples.len() - n) / (count - 1)
    } else {
        0
    };
    for w in 0..count {
        let start = w * step;
        acc.add_window(&samples[start..start + n]);
    }
    acc.cents()
}

/// Accumulates peak deviations window by window (usable incrementally on a live stream).
pub struct TuningAccumulator {
    spectrum: PowerSpectrum,
    power: Vec<f32>,
    bin_hz: f64,
    sum_cos: f64,
    sum_sin: f64,
    total_weight: f64,
}

impl TuningAccumulator {
    /// A new accumulator for audio at `sample_rate_hz`.
    pub fn new(sample_rate_hz: u32) -> Self {
        let spectrum = PowerSpectrum::new(TUNING_WINDOW);
        Self {
            power: vec![0.0; spectrum.bins()],
            spectrum,
            bin_hz: sample_rate_hz as f64 / TUNING_WINDOW as f64,
            sum_cos: 0.0,
            sum_sin: 0.0,
            total_weight: 0.0,
        }
    }

    /// Window length this accumulator expects (samples).
    pub fn window_samples(&self) -> usize {
        TUNING_WINDOW
    }

    /// Add one window of exactly [`Self::window_samples`] samples.
    pub fn add_window(&mut self, window: &[f32]) {
        self.spectrum.process(window, &mut self.power);
        let max = self.power.iter().copied().fold(0.0f32, f32::max);
        if max < 1e-7 {
            return;
        }
        let floor = max * 1e-3;
        let lo = ((MIN_PEAK_HZ / self.bin_hz) as usize).max(2);
        let hi = ((MAX_PEAK_HZ / self.bin_hz) as usize).min(self.power.len() - 2);
        for k in lo..hi {
            let p = self.power[k];
            if p < floor || p < self.power[k - 1] || p <= self.power[k + 1] {
                continue;
            }
            // Parabolic interpolation of the log power around the peak.
            let (a, b, c) = (
                (self.power[k - 1] + 1e-12).ln() as f64,
                (p + 1e-12).ln() as f64,
                (self.power[k + 1] + 1e-12).ln() as f64,
            );
            let denom = a - 2.0 * b + c;
            let delta = if denom.abs() > 1e-12 {
                0.5 * (a - c) / denom
            } else {
                0.0
            };
            let f = (k as f64 + delta.clamp(-0.5, 0.5)) * self.bin_hz;
            let q = 69.0 + 12.0 * (f / 440.0).log2();
            let dev = q - q.round();
            let w = (p as f64).sqrt();
            let phase = 2.0 * std::f64::consts::PI * dev;
            self.sum_cos += w * phase.cos();
            self.sum_sin += w * phase.sin();
            self.total_weight += w;
        }
    }

    /// Scale the evidence gathered so far by `factor` (in (0, 1]): older windows count less.
    pub fn decay(&mut self, factor: f64) {
        self.sum_cos *= factor;
        self.sum_sin *= factor;
        self.total_weight *= factor;
    }

    /// How consistent the peaks' deviations are: the length of their weighted mean phase
    /// vector, 1 when every peak has the same deviation, near 0 for no tonal agreement.
    pub fn agreement(&self) -> f64 {
        if self.total_weight <= 0.0 {
            return 0.0;
        }
        self.sum_cos.hypot(self.sum_sin) / self.total_weight
    }

    /// The current estimate (cents in [-50, 50)); 0 when nothing tonal was seen.
    pub fn cents(&self) -> f32 {
        if self.total_weight <= 0.0 {
            return 0.0;
        }
        let angle = self.sum_sin.atan2(self.sum_cos);
        let cents = angle / (2.0 * std::f64::consts::PI) * 100.0;
        if cents >= 50.0 {
            (cents - 100.0) as f32
        } else {
            cents as f32
        }
    }
}

/// Seconds of audio between two tuning analyses.
const TRACK_INTERVAL_S: f64 = 0.5;
/// Analyses before the first decision: the tuning is estimated from the first seconds.
const TRACK_FIRST_WINDOWS: usize = 8;
/// Weight kept per analysis: the estimate follows drift over about 5 s.
const TRACK_DECAY: f64 = 0.9;
/// A new estimate is adopted when it differs from the tuning in use by more than this (cents);
/// smaller deviations move little energy between semitone bands.
const TRACK_HYSTERESIS_CENTS: f32 = 10.0;
/// Least [`TuningAccumulator::agreement`] for a decision.
const TRACK_MIN_AGREEMENT: f64 = 0.5;
/// The estimate must have moved less than this since the previous analysis (cents): a
/// decision is not taken in the middle of a change.
const TRACK_SETTLED_CENTS: f32 = 2.0;

/// Follows the tuning of a stream: every 0.5 s it analyses the last 8192 samples, with the
/// older evidence decaying (weight 0.9 per analysis), and after the first 4 s it proposes a
/// new tuning whenever the estimate is consistent (agreement ≥ 0.5), settled (moved less
/// than 2 cents since the previous analysis) and more than 10 cents from the tuning in use. Decisions fall on frame boundaries (the interval is a whole number
/// of hops), so they do not depend on how the stream is chunked. No allocation after
/// construction.
pub struct TuningTracker {
    acc: TuningAccumulator,
    ring: Vec<f32>,
    write_pos: usize,
    samples_seen: usize,
    window: Vec<f32>,
    frames_per_analysis: usize,
    analyses: usize,
    current_cents: f32,
    previous_estimate: f32,
}

impl TuningTracker {
    /// A tracker for frames of `cfg`, starting from `initial_cents`.
    pub fn new(cfg: &FeatureConfig, initial_cents: f32) -> Self {
        let acc = TuningAccumulator::new(cfg.sample_rate_hz);
        let n = acc.window_samples();
        let hop_s = cfg.hop_samples as f64 / cfg.sample_rate_hz as f64;
        Self {
            acc,
            ring: vec![0.0; n],
            write_pos: 0,
            samples_seen: 0,
            window: vec![0.0; n],
            frames_per_analysis: ((TRACK_INTERVAL_S / hop_s).round() as usize).max(1),
            analyses: 0,
            current_cents: initial_cents,
            previous_estimate: f32::NAN,
        }
    }

    /// The tuning in use (cents).
    pub fn cents(&self) -> f32 {
        self.current_cents
    }

    /// Remember the newest samples.
    pub fn push_samples(&mut self, samples: &[f32]) {
        let n = self.ring.len();
        for &x in samples {
            self.ring[self.write_pos] = x;
            self.write_pos = (self.write_pos + 1) % n;
        }
        self.samples_seen += samples.len();
    }

    /// Called after frame `frames_done - 1` is complete; returns a new tuning to use from
    /// the next frame on, if one is decided.
    pub fn frame_done(&mut self, frames_done: usize) -> Option<f32> {
        let n = self.ring.len();
        if !frames_done.is_multiple_of(self.frames_per_analysis) || self.samples_seen < n {
            return None;
        }
        // Oldest first.
        let (newer, older) = self.ring.split_at(self.write_pos);
        self.window[..older.len()].copy_from_slice(older);
        self.window[older.len()..].copy_from_slice(newer);
        self.acc.decay(TRACK_DECAY);
        self.acc.add_window(&self.window);
        self.analyses += 1;
        if self.analyses < TRACK_FIRST_WINDOWS || self.acc.agreement() < TRACK_MIN_AGREEMENT {
            return None;
        }
        let est = self.acc.cents();
        let previous = std::mem::replace(&mut self.previous_estimate, est);
        // Deviations wrap at ±50 cents.
        let wrap = |d: f32| {
            if d >= 50.0 {
                d - 100.0
            } else if d < -50.0 {
                d + 100.0
            } else {
                d
            }
        };
        let settled = wrap(est - previous).abs() < TRACK_SETTLED_CENTS;
        if !settled || wrap(est - self.current_cents).abs() <= TRACK_HYSTERESIS_CENTS {
            return None;
        }
        tracing::info!(
            from_cents = self.current_cents,
            to_cents = est,
            "performance tuning updated"
        );
        self.current_cents = est;
        Some(est)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn harmonic_tone(pitch: f64, cents: f64, seconds: f64) -> Vec<f32> {
        let f0 = 440.0 * 2f64.powf((pitch - 69.0 + cents / 100.0) / 12.0);
        (0..(seconds * 22050.0) as usize)
            .map(|i| {
                let t = i as f64 / 22050.0;
                (1..6)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum::<f64>() as f32
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn recovers_known_detuning() {
        let cfg = FeatureConfig::default();
        for cents in [-40.0, -20.0, 0.0, 15.0, 30.0] {
            let mut x = harmonic_tone(57.0, cents, 1.0);
            x.extend(harmonic_tone(64.0, cents, 1.0));
            x.extend(harmonic_tone(72.0, cents, 1.0));
            let est = estimate_tuning_cents(&x, &cfg) as f64;
            assert!((est - cents).abs() < 4.0, "want {cents}, got {est}");
        }
    }

    /// A stream that starts in tune and drifts 40 cents sharp: the tracker settles on each
    /// tuning, and the extractor's frames then put the energy back in the played pitch class.
    #[test]
    fn tracker_follows_a_drift_and_frames_do_not_depend_on_chunking() {
        let cfg = FeatureConfig::default();
        let mut x = Vec::new();
        for (pitch, cents) in [(57.0, 0.0), (64.0, 0.0), (60.0, 0.0), (69.0, 0.0)] {
            x.extend(harmonic_tone(pitch, cents, 2.0));
        }
        for (pitch, cents) in [(57.0, 40.0), (64.0, 40.0), (60.0, 40.0), (69.0, 40.0)] {
            x.extend(harmonic_tone(pitch, cents, 3.0));
        }
        let all = crate::features::chroma::extract_tracking_tuning(&x, &cfg, 0.0);
        assert!(
            (all.tuning_cents - 40.0).abs() < 5.0,
            "{}",
            all.tuning_cents
        );
        // The first decision is in tune: no retune in the first 8 s.
        let mut tr = TuningTracker::new(&cfg, 0.0);
        let mut changes = Vec::new();
        let hop = cfg.hop_samples;
        for (k, chunk) in x.chunks(hop).enumerate() {
            tr.push_samples(chunk);
            if chunk.len() == hop {
                if let Some(c) = tr.frame_done(k + 1) {
                    changes.push((k as f64 * hop as f64 / 22050.0, c));
                }
            }
        }
        assert!(!changes.is_empty() && changes[0].0 > 8.0, "{changes:?}");
        // Streaming in odd chunks gives the same frames.
        let mut ex =
            crate::features::chroma::StreamingExtractor::new(&cfg, 0.0).with_tuning_tracking();
        let mut frames = Vec::new();
        for chunk in x.chunks(1000) {
            ex.push(chunk, |_, f| frames.push(*f));
        }
        assert_eq!(frames.len(), all.frames.len());
        assert!(frames
            .iter()
            .zip(&all.frames)
            .all(|(a, b)| a.chroma == b.chroma));
        // Late A4 frames, 40 cents sharp: with tracking nearly all the energy is in A.
        let last = all.frames.len() - 20;
        let a = all.frames[last].chroma[9];
        let fixed = crate::features::chroma::extract_with_tuning(&x, &cfg, 0.0);
        let a_fixed = fixed.frames[last].chroma[9];
        assert!(
            a > 0.9 && a > a_fixed + 0.05,
            "tracked {a}, fixed {a_fixed}"
        );
    }

    #[test]
    fn silence_and_short_input_give_zero() {
        let cfg = FeatureConfig::default();
        assert_eq!(estimate_tuning_cents(&[0.0; 100], &cfg), 0.0);
        assert_eq!(estimate_tuning_cents(&vec![0.0; 50_000], &cfg), 0.0);
    }
}
