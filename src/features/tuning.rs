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

    #[test]
    fn silence_and_short_input_give_zero() {
        let cfg = FeatureConfig::default();
        assert_eq!(estimate_tuning_cents(&[0.0; 100], &cfg), 0.0);
        assert_eq!(estimate_tuning_cents(&vec![0.0; 50_000], &cfg), 0.0);
    }
}
