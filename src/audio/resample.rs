//! Streaming band-limited resampling of mono audio (rubato 5.1), allocation-free after
//! construction.
//!
//! Two rubato engines are used, chosen by the rate pair:
//!
//! * `Fft` (synchronous, FFT overlap-add with a BlackmanHarris² anti-aliasing filter) when
//!   the rates share a large common divisor (`rate_in / gcd <= 4096`, true for every pair of
//!   standard rates: 48 000 -> 22 050 needs blocks of 320 frames). It is the fastest.
//! * `Async` sinc (256 taps, cubic interpolation of an oversampled windowed sinc) otherwise,
//!   e.g. for 44 101 Hz, where the FFT block would be the whole second of audio.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, FixedSync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use crate::{Error, Result};

/// Input frames per rubato call. Small enough to keep the delay low, big enough for speed.
const CHUNK_FRAMES: usize = 1024;

/// Largest `rate_in / gcd(rate_in, rate_out)` for which the FFT engine is used.
const MAX_FFT_BLOCK: usize = 4096;

/// Streaming mono resampler from `input_rate_hz` to `output_rate_hz`.
///
/// Feed any number of samples at a time with [`process`](Self::process); output comes out in
/// blocks as the internal input chunk fills, delayed by
/// [`output_delay_samples`](Self::output_delay_samples) output samples (the filter's group
/// delay; the first that many output samples are the filter warming up on silence).
pub struct StreamResampler {
    inner: Box<dyn Resampler<f32>>,
    input_rate_hz: u32,
    output_rate_hz: u32,
    pending: Box<[f32]>,
    filled: usize,
    scratch_out: Box<[f32]>,
    errors: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("input_rate_hz", &self.input_rate_hz)
            .field("output_rate_hz", &self.output_rate_hz)
            .field("delay", &self.inner.output_delay())
            .finish_non_exhaustive()
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl StreamResampler {
    /// Build a resampler. Both rates must be positive.
    pub fn new(input_rate_hz: u32, output_rate_hz: u32) -> Result<Self> {
        if input_rate_hz == 0 || output_rate_hz == 0 {
            return Err(Error::invalid(
                "resampler rates",
                format!("{input_rate_hz} -> {output_rate_hz} Hz"),
                "sample rates must be positive",
            ));
        }
        let (fin, fout) = (input_rate_hz as usize, output_rate_hz as usize);
        let inner: Box<dyn Resampler<f32>> = if fin / gcd(fin, fout) <= MAX_FFT_BLOCK {
            Box::new(
                rubato::Fft::<f32>::new(fin, fout, CHUNK_FRAMES, 1, FixedSync::Input)
                    .map_err(|e| rate_error(input_rate_hz, output_rate_hz, e))?,
            )
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: None,
                oversampling_factor: 128,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            Box::new(
                Async::<f32>::new_sinc(
                    fout as f64 / fin as f64,
                    1.0,
                    &params,
                    CHUNK_FRAMES,
                    1,
                    FixedAsync::Input,
                )
                .map_err(|e| rate_error(input_rate_hz, output_rate_hz, e))?,
            )
        };
        let pending = vec![0.0; inner.input_frames_max()].into_boxed_slice();
        let scratch_out = vec![0.0; inner.output_frames_max()].into_boxed_slice();
        Ok(Self {
            inner,
            input_rate_hz,
            output_rate_hz,
            pending,
            filled: 0,
            scratch_out,
            errors: 0,
        })
    }

    /// Input rate (Hz).
    pub fn input_rate_hz(&self) -> u32 {
        self.input_rate_hz
    }

    /// Output rate (Hz).
    pub fn output_rate_hz(&self) -> u32 {
        self.output_rate_hz
    }

    /// Output samples by which the output lags the input (filter group delay), at the output
    /// rate.
    pub fn output_delay_samples(&self) -> usize {
        self.inner.output_delay()
    }

    /// An upper bound on the samples one [`process`](Self::process) call with `input_len`
    /// input samples appends. Reserve this much spare capacity in `out` to stay
    /// allocation-free.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        let chunks = (self.filled + input_len) / self.inner.input_frames_next().max(1) + 1;
        chunks * self.inner.output_frames_max()
    }

    /// Resample `input` and append whatever output is ready to `out`. Does not allocate when
    /// `out` has [`max_output_len`](Self::max_output_len) spare capacity. Returns the number
    /// of samples appended.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> usize {
        let mut appended = 0;
        let mut rest = input;
        while !rest.is_empty() {
            let need = self.inner.input_frames_next();
            let take = (need - self.filled).min(rest.len());
            self.pending[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == need {
                appended += self.run_chunk(need, None, out);
            }
        }
        appended
    }

    /// Push the buffered input and the filter tail out with silence, so that every input
    /// sample given so far has its output in `out` (plus up to one chunk of trailing
    /// silence). Appends to `out` (may allocate) and returns the count. The resampler is
    /// reset afterwards.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> usize {
        let mut appended = 0;
        let need = self.inner.input_frames_next();
        let partial = self.filled;
        if partial > 0 {
            appended += self.run_chunk(need, Some(partial), out);
        }
        let delay = self.output_delay_samples();
        let mut tail = 0;
        while tail < delay + 1 {
            let need = self.inner.input_frames_next();
            self.pending[..need].fill(0.0);
            self.filled = need;
            let n = self.run_chunk(need, None, out);
            tail += n;
            appended += n;
            if n == 0 {
                break;
            }
        }
        self.reset();
        appended
    }

    /// Forget all buffered input and filter state.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.filled = 0;
    }

    /// rubato calls that failed (should stay 0: buffer sizes are fixed at construction).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn run_chunk(&mut self, need: usize, partial: Option<usize>, out: &mut Vec<f32>) -> usize {
        self.filled = 0;
        let input = match InterleavedSlice::new(&self.pending[..need], 1, need) {
            Ok(a) => a,
            Err(_) => {
                self.errors += 1;
                return 0;
            }
        };
        let out_frames = self.scratch_out.len();
        let mut output = match InterleavedSlice::new_mut(&mut self.scratch_out[..], 1, out_frames) {
            Ok(a) => a,
            Err(_) => {
                self.errors += 1;
                return 0;
            }
        };
        let indexing = partial.map(|p| rubato::Indexing::new().partial_len(p));
        match self
            .inner
            .process_into_buffer(&input, &mut output, indexing.as_ref())
        {
            Ok((_, n_out)) => {
                out.extend_from_slice(&self.scratch_out[..n_out]);
                n_out
            }
            Err(_) => {
                self.errors += 1;
                0
            }
        }
    }
}

fn rate_error(input: u32, output: u32, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        "resampler rates",
        format!("{input} -> {output} Hz"),
        e.to_string(),
    )
}

/// Resample a whole signal, trimming the filter delay so output sample `k` corresponds to
/// time `k / output_rate_hz` and the length is `round(len * out / in)`.
pub fn resample_all(input: &[f32], input_rate_hz: u32, output_rate_hz: u32) -> Result<Vec<f32>> {
    if input_rate_hz == output_rate_hz {
        return Ok(input.to_vec());
    }
    let mut rs = StreamResampler::new(input_rate_hz, output_rate_hz)?;
    let want = expected_len(input.len() as u64, input_rate_hz, output_rate_hz) as usize;
    let delay = rs.output_delay_samples();
    let mut out = Vec::with_capacity(want + delay + rs.max_output_len(0) * 2);
    rs.process(input, &mut out);
    rs.flush(&mut out);
    let end = (delay + want).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}

/// `round(input_len * output_rate / input_rate)`: the length of a resampled signal.
pub fn expected_len(input_len: u64, input_rate_hz: u32, output_rate_hz: u32) -> u64 {
    ((input_len as u128 * output_rate_hz as u128 + input_rate_hz as u128 / 2)
        / input_rate_hz.max(1) as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the amplitude of frequency `f_hz` in `x` (sampled at `rate`) by direct
    /// correlation with a complex exponential (a single DFT bin, exact for any frequency).
    fn tone_amplitude(x: &[f32], rate: f64, f_hz: f64) -> f64 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, &v) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f_hz * n as f64 / rate;
            re += v as f64 * ph.cos();
            im += v as f64 * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn sine(rate: u32, f_hz: f64, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * f_hz * i as f64 / rate as f64).sin() as f32
            })
            .collect()
    }

    fn check_pair(fin: u32, fout: u32) {
        let x = sine(fin, 1000.0, fin as usize, 0.5);
        let y = resample_all(&x, fin, fout).unwrap();
        assert_eq!(y.len() as u64, expected_len(x.len() as u64, fin, fout));
        // Skip the edges, where the filter sees the signal switch on and off.
        let mid = &y[fout as usize / 10..y.len() - fout as usize / 10];
        let a = tone_amplitude(mid, fout as f64, 1000.0);
        assert!((a - 0.5).abs() < 0.005, "{fin}->{fout}: amplitude {a}");
        // Phase: the delay trim must leave the output aligned with the input to within one
        // output sample (rubato reports its delay in whole samples; an odd FFT block has a
        // half-sample remainder). A one-sample shift of this sine changes a value by at most
        // amplitude * 2 pi f / rate.
        let want = sine(fout, 1000.0, y.len(), 0.5);
        let tol = 0.5 * 2.0 * std::f32::consts::PI * 1000.0 / fout as f32;
        let k = fout as usize / 2;
        for (i, (a, b)) in y.iter().zip(&want).enumerate().skip(k).take(50) {
            assert!((a - b).abs() < tol, "{fin}->{fout} at {i}: {a} vs {b}");
        }
    }

    #[test]
    fn fft_engine_keeps_tone_and_phase() {
        check_pair(48_000, 22_050);
        check_pair(44_100, 22_050);
        check_pair(16_000, 22_050);
    }

    #[test]
    fn sinc_engine_keeps_tone_and_phase() {
        check_pair(44_101, 22_050);
    }

    #[test]
    fn removes_content_above_new_nyquist() {
        // 15 kHz at 48 kHz cannot exist at 22 050 Hz (Nyquist 11 025): it must not alias down
        // to 22 050 - 15 000 = 7 050 Hz.
        let x = sine(48_000, 15_000.0, 48_000, 0.5);
        let y = resample_all(&x, 48_000, 22_050).unwrap();
        let mid = &y[2205..y.len() - 2205];
        let alias = tone_amplitude(mid, 22_050.0, 7_050.0);
        assert!(alias < 1e-3, "alias amplitude {alias}");
    }

    #[test]
    fn streaming_equals_one_shot_for_any_split() {
        let x = sine(48_000, 440.0, 20_000, 0.3);
        let mut one = StreamResampler::new(48_000, 22_050).unwrap();
        let mut a = Vec::new();
        one.process(&x, &mut a);
        let mut many = StreamResampler::new(48_000, 22_050).unwrap();
        let mut b = Vec::new();
        for piece in x.chunks(37) {
            many.process(piece, &mut b);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert!(StreamResampler::new(0, 22_050).is_err());
        assert!(StreamResampler::new(22_050, 0).is_err());
    }
}
