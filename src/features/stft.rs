//! Windowed real FFT of one frame: Hann window, realfft, power spectrum. Plan once, process many
//! with owned scratch; no allocation per frame.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Power spectrum of Hann-windowed frames of a fixed length.
pub struct PowerSpectrum {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Divides |X|^2 so that a full-scale sine at a bin centre has power 1.
    power_scale: f32,
}

impl PowerSpectrum {
    /// Plan an FFT of `window_samples` points (any length; powers of two are fastest).
    pub fn new(window_samples: usize) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(window_samples);
        let window = hann(window_samples);
        let window_sum: f32 = window.iter().sum();
        // A sine of amplitude a at a bin centre gives |X| = a * sum(w) / 2.
        let power_scale = 1.0 / (0.5 * window_sum).powi(2);
        Self {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            power_scale,
        }
    }

    /// Number of spectrum bins (window / 2 + 1).
    pub fn bins(&self) -> usize {
        self.output.len()
    }

    /// Window length (samples).
    pub fn window_samples(&self) -> usize {
        self.window.len()
    }

    /// Window the frame given as two slices (the two halves of a circular buffer, oldest first)
    /// and write the power spectrum into `power` (length [`Self::bins`]).
    pub fn process_split(&mut self, first: &[f32], second: &[f32], power: &mut [f32]) {
        debug_assert_eq!(first.len() + second.len(), self.window.len());
        let (w1, w2) = self.window.split_at(first.len());
        let (i1, i2) = self.input.split_at_mut(first.len());
        for ((dst, &x), &w) in i1.iter_mut().zip(first).zip(w1) {
            *dst = x * w;
        }
        for ((dst, &x), &w) in i2.iter_mut().zip(second).zip(w2) {
            *dst = x * w;
        }
        // The planned length always matches the owned buffers, so this cannot fail.
        let _ = self
            .fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch);
        for (p, c) in power.iter_mut().zip(&self.output) {
            *p = c.norm_sqr() * self.power_scale;
        }
    }

    /// Power spectrum of one contiguous frame.
    pub fn process(&mut self, frame: &[f32], power: &mut [f32]) {
        self.process_split(frame, &[], power);
    }
}

/// Periodic Hann window of length `n`.
pub fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = std::f64::consts::PI * i as f64 / n as f64;
            (x.sin() * x.sin()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DFT by definition: the oracle for the FFT path.
    fn naive_power(frame: &[f32]) -> Vec<f64> {
        let n = frame.len();
        let w = hann(n);
        let sum_w: f64 = w.iter().map(|&x| x as f64).sum();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (i, (&x, &wi)) in frame.iter().zip(&w).enumerate() {
                    let ph = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += (x * wi) as f64 * ph.cos();
                    im += (x * wi) as f64 * ph.sin();
                }
                (re * re + im * im) / (0.5 * sum_w).powi(2)
            })
            .collect()
    }

    #[test]
    fn matches_naive_dft() {
        let n = 256;
        let frame: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let mut ps = PowerSpectrum::new(n);
        let mut out = vec![0.0; ps.bins()];
        ps.process(&frame, &mut out);
        let want = naive_power(&frame);
        for (a, b) in out.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // Dirty state: a second call with other data gives that data's spectrum.
        let frame2: Vec<f32> = frame.iter().rev().copied().collect();
        ps.process(&frame2, &mut out);
        let want2 = naive_power(&frame2);
        for (a, b) in out.iter().zip(&want2) {
            assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn full_scale_sine_at_bin_centre_has_unit_power() {
        let n = 1024;
        let k = 37;
        let frame: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * (k * i) as f32 / n as f32).sin())
            .collect();
        let mut ps = PowerSpectrum::new(n);
        let mut out = vec![0.0; ps.bins()];
        ps.process(&frame, &mut out);
        assert!((out[k] - 1.0).abs() < 1e-3, "{}", out[k]);
    }

    #[test]
    fn split_equals_contiguous() {
        let n = 512;
        let frame: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut ps = PowerSpectrum::new(n);
        let mut a = vec![0.0; ps.bins()];
        let mut b = vec![0.0; ps.bins()];
        ps.process(&frame, &mut a);
        ps.process_split(&frame[..100], &frame[100..], &mut b);
        assert_eq!(a, b);
    }
}
