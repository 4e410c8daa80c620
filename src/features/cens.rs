//! CENS: chroma energy normalised statistics (Müller, Kurth & Clausen 2005; FMP C7S2).
//!
//! From the follower's chroma frames: L1-normalise each frame, quantise every pitch class
//! logarithmically (thresholds 0.05, 0.1, 0.2, 0.4 -> 1..4), smooth each pitch class over time
//! with a Hann window of `smooth_frames` frames, keep every `downsample`-th frame and
//! L2-normalise. The quantisation discards dynamics and the smoothing discards local tempo and
//! articulation, which is what makes CENS robust for matching musical content across versions.
//!
//! Frame convention: CENS frame `j` is centred on input chroma frame `j * downsample`
//! ([`CensConfig::input_frame`]); the input outside the sequence counts as silence (zeros).
//! [`cens`] (offline) and [`StreamingCens`] (one frame in, at most one out) give identical
//! frames; the streaming form outputs frame `j` once input frame
//! `j * downsample + (smooth_frames - 1) / 2` has arrived ([`StreamingCens::latency_frames`]).

use super::{Chroma, N_CHROMA};

/// Quantisation thresholds on L1-normalised chroma (Müller 2005): a pitch class holding at
/// least `QUANT_THRESHOLDS[i]` of the frame's energy gets one more step.
pub const QUANT_THRESHOLDS: [f32; 4] = [0.05, 0.1, 0.2, 0.4];

/// An input frame whose L2 norm is below this is silence (the chroma stage emits a flat vector of
/// small norm for silence, unit norm otherwise) and quantises to zero.
pub const SILENCE_NORM: f32 = 0.5;

/// CENS parameters, in input (chroma) frames.
///
/// Defaults, measured by theme spotting on the dev corpus with 50 chroma frames/s
/// (`examples/theme_eval.rs`): a 21-frame (0.42 s) Hann window and downsampling by 5 (10 CENS
/// frames/s). Onset MAP, MIDI / audio queries: smoothing 21 0.886 / 0.838, 25 0.874 / 0.834,
/// 31 0.873 / 0.805, 41 (the classic CENS 41-10 at 10 Hz input) lower; downsampling 3 0.875 / 0.837.
#[derive(Clone, Debug, PartialEq)]
pub struct CensConfig {
    /// Length of the Hann smoothing window (input frames; made odd by adding one if even).
    pub smooth_frames: usize,
    /// Keep every `downsample`-th smoothed frame (>= 1).
    pub downsample: usize,
}

impl Default for CensConfig {
    fn default() -> Self {
        Self {
            smooth_frames: 21,
            downsample: 5,
        }
    }
}

impl CensConfig {
    /// The odd window length actually used (input frames).
    pub fn window_len(&self) -> usize {
        let w = self.smooth_frames.max(1);
        if w.is_multiple_of(2) {
            w + 1
        } else {
            w
        }
    }

    /// Half the window (input frames): the look-ahead of the smoother.
    pub fn half_window(&self) -> usize {
        (self.window_len() - 1) / 2
    }

    /// Downsampling factor, at least 1.
    pub fn step(&self) -> usize {
        self.downsample.max(1)
    }

    /// The input chroma frame CENS frame `j` is centred on.
    pub fn input_frame(&self, j: usize) -> usize {
        j * self.step()
    }

    /// Number of CENS frames for `n_input` chroma frames.
    pub fn output_len(&self, n_input: usize) -> usize {
        n_input.div_ceil(self.step())
    }

    /// The Hann window (positive everywhere, sums to 1).
    pub fn window(&self) -> Vec<f32> {
        let w = self.window_len();
        let raw: Vec<f64> = (0..w)
            .map(|k| {
                let x = std::f64::consts::PI * (k + 1) as f64 / (w + 1) as f64;
                x.sin() * x.sin()
            })
            .collect();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|v| (v / sum) as f32).collect()
    }
}

/// Quantise one chroma frame (any non-negative scale) to CENS steps 0..=4.
pub fn quantize(c: &Chroma) -> Chroma {
    let l2 = c.iter().map(|v| v * v).sum::<f32>().sqrt();
    let l1: f32 = c.iter().map(|v| v.max(0.0)).sum();
    let mut out = [0.0; N_CHROMA];
    if l2 < SILENCE_NORM || l1 <= 0.0 {
        return out;
    }
    for (o, v) in out.iter_mut().zip(c) {
        let p = v.max(0.0) / l1;
        *o = QUANT_THRESHOLDS.iter().filter(|&&t| p >= t).count() as f32;
    }
    out
}

/// L2-normalise in place; a (near) zero vector becomes the flat unit vector, as in the Chroma
/// Toolbox, so that silence compares equal to silence.
pub fn normalize_l2(c: &mut Chroma) {
    let n = c.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n < 1e-6 {
        *c = super::SILENT_CHROMA;
    } else {
        for v in c.iter_mut() {
            *v /= n;
        }
    }
}

/// Offline CENS of a chroma sequence.
pub fn cens(chroma: &[Chroma], cfg: &CensConfig) -> Vec<Chroma> {
    let q: Vec<Chroma> = chroma.iter().map(quantize).collect();
    let win = cfg.window();
    let h = cfg.half_window() as isize;
    (0..cfg.output_len(chroma.len()))
        .map(|j| {
            let centre = cfg.input_frame(j) as isize;
            let mut acc = [0.0f32; N_CHROMA];
            for (k, w) in win.iter().enumerate() {
                let i = centre + k as isize - h;
                if i < 0 || i >= q.len() as isize {
                    continue;
                }
                for (a, v) in acc.iter_mut().zip(&q[i as usize]) {
                    *a += w * v;
                }
            }
            normalize_l2(&mut acc);
            acc
        })
        .collect()
}

/// Streaming CENS: push chroma frames one at a time, get CENS frames as soon as their window is
/// complete. Allocates only in [`StreamingCens::new`].
#[derive(Clone, Debug)]
pub struct StreamingCens {
    cfg: CensConfig,
    win: Vec<f32>,
    /// Ring of the last `win.len()` quantised frames.
    ring: Vec<Chroma>,
    /// Number of input frames pushed so far.
    n_in: usize,
    /// Next CENS frame to output.
    next_out: usize,
}

impl StreamingCens {
    /// A new streaming CENS stage.
    pub fn new(cfg: &CensConfig) -> Self {
        let win = cfg.window();
        Self {
            ring: vec![[0.0; N_CHROMA]; win.len()],
            win,
            cfg: cfg.clone(),
            n_in: 0,
            next_out: 0,
        }
    }

    /// Input frames between the arrival of the frame a CENS frame is centred on and its output.
    pub fn latency_frames(&self) -> usize {
        self.cfg.half_window()
    }

    /// Back to the state after `new`.
    pub fn reset(&mut self) {
        self.ring.iter_mut().for_each(|r| *r = [0.0; N_CHROMA]);
        self.n_in = 0;
        self.next_out = 0;
    }

    /// Number of CENS frames output so far.
    pub fn frames_out(&self) -> usize {
        self.next_out
    }

    /// Push one chroma frame; returns the next CENS frame when it became complete.
    pub fn push(&mut self, c: &Chroma) -> Option<Chroma> {
        let w = self.ring.len();
        self.ring[self.n_in % w] = quantize(c);
        self.n_in += 1;
        let centre = self.cfg.input_frame(self.next_out);
        // The newest input frame is n_in - 1; frame `next_out` needs centre + half of it.
        if self.n_in > centre + self.cfg.half_window() {
            Some(self.emit(self.n_in))
        } else {
            None
        }
    }

    /// End of input: the CENS frames still pending (their windows are padded with silence).
    pub fn flush(&mut self) -> Vec<Chroma> {
        let mut out = Vec::new();
        let n_total = self.n_in;
        while self.cfg.input_frame(self.next_out) < n_total {
            out.push(self.emit(n_total));
        }
        out
    }

    /// Compute frame `next_out` from the ring, treating frames >= `avail` as silence.
    fn emit(&mut self, avail: usize) -> Chroma {
        let w = self.ring.len();
        let h = self.cfg.half_window() as isize;
        let centre = self.cfg.input_frame(self.next_out) as isize;
        let mut acc = [0.0f32; N_CHROMA];
        for (k, wt) in self.win.iter().enumerate() {
            let i = centre + k as isize - h;
            // Frames before 0, not yet arrived, or already overwritten (only possible before 0)
            // are silence.
            if i < 0 || i as usize >= avail || (i as usize) + w < self.n_in {
                continue;
            }
            for (a, v) in acc.iter_mut().zip(&self.ring[i as usize % w]) {
                *a += wt * v;
            }
        }
        normalize_l2(&mut acc);
        self.next_out += 1;
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unit(v: [f32; N_CHROMA]) -> Chroma {
        let mut v = v;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    #[test]
    fn quantize_steps_follow_thresholds() {
        // L1 shares 0.5, 0.25, 0.125, 0.0625, 0.0625 -> steps 4, 3, 2, 1, 1.
        let mut c = [0.0; N_CHROMA];
        c[0] = 8.0;
        c[1] = 4.0;
        c[2] = 2.0;
        c[3] = 1.0;
        c[4] = 1.0;
        let q = quantize(&unit(c));
        assert_eq!(&q[..6], &[4.0, 3.0, 2.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn silence_quantises_to_zero_and_normalises_flat() {
        let flat_small = [0.01; N_CHROMA];
        assert_eq!(quantize(&flat_small), [0.0; N_CHROMA]);
        let out = cens(&[flat_small; 20], &CensConfig::default());
        for f in out {
            for v in f {
                assert!((v - 1.0 / 12f32.sqrt()).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn output_is_unit_norm_and_downsampled() {
        let mut seq = Vec::new();
        for i in 0..97 {
            let mut c = [0.05; N_CHROMA];
            c[i % 12] = 1.0;
            seq.push(unit(c));
        }
        let cfg = CensConfig {
            smooth_frames: 9,
            downsample: 4,
        };
        let out = cens(&seq, &cfg);
        assert_eq!(out.len(), 25);
        for f in &out {
            let n: f32 = f.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn constant_input_gives_constant_output_away_from_edges() {
        let mut c = [0.1; N_CHROMA];
        c[7] = 1.0;
        let seq = vec![unit(c); 60];
        let cfg = CensConfig {
            smooth_frames: 11,
            downsample: 3,
        };
        let out = cens(&seq, &cfg);
        let q = {
            let mut q = quantize(&unit(c));
            normalize_l2(&mut q);
            q
        };
        for f in &out[2..out.len() - 2] {
            for (a, b) in f.iter().zip(&q) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }

    proptest! {
        #[test]
        fn streaming_equals_offline(
            frames in proptest::collection::vec(proptest::array::uniform12(0.0f32..1.0), 0..80),
            smooth in 1usize..20,
            down in 1usize..7,
        ) {
            let frames: Vec<Chroma> = frames.into_iter().map(|f| {
                let n = f.iter().map(|x| x * x).sum::<f32>().sqrt();
                if n > 0.0 { f.map(|x| x / n) } else { f }
            }).collect();
            let cfg = CensConfig { smooth_frames: smooth, downsample: down };
            let off = cens(&frames, &cfg);
            let mut s = StreamingCens::new(&cfg);
            let mut on = Vec::new();
            for f in &frames {
                if let Some(c) = s.push(f) {
                    on.push(c);
                }
            }
            on.extend(s.flush());
            prop_assert_eq!(on.len(), off.len());
            for (a, b) in on.iter().zip(&off) {
                for (x, y) in a.iter().zip(b) {
                    prop_assert!((x - y).abs() < 1e-5);
                }
            }
        }
    }
}
