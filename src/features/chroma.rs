//! Chroma and onset-chroma frames, offline and streaming through one code path.

use super::stft::PowerSpectrum;
use super::tuning::{estimate_tuning_cents, TuningTracker};
use super::{Chroma, FeatureConfig, FeatureFrame, Features, N_CHROMA};

/// Sparse semitone filterbank: each FFT bin contributes to the two semitones nearest to its
/// frequency, linearly weighted by distance in (tuning-shifted) semitones. Linear interpolation
/// keeps the energy of a tone that falls between two semitones (e.g. a detuned instrument).
#[derive(Clone, Debug)]
pub struct SemitoneFilterbank {
    /// (bin, pitch index from `min_pitch`, weight), sorted by bin.
    taps: Vec<(u32, u16, f32)>,
    /// Pitch class (0 = C) of each pitch index.
    pitch_class: Vec<u8>,
}

impl SemitoneFilterbank {
    /// Build the filterbank for `cfg` with the reference A4 shifted by `tuning_cents`.
    pub fn new(cfg: &FeatureConfig, tuning_cents: f32) -> Self {
        let n_bins = cfg.window_samples / 2 + 1;
        // At most two taps per bin whatever the tuning, so a retune never reallocates.
        let mut fb = Self {
            taps: Vec::with_capacity(2 * n_bins),
            pitch_class: (cfg.min_pitch..=cfg.max_pitch).map(|p| p % 12).collect(),
        };
        fb.retune(cfg, tuning_cents);
        fb
    }

    /// Rebuild the taps for another tuning, in place (no allocation).
    pub fn retune(&mut self, cfg: &FeatureConfig, tuning_cents: f32) {
        let n_bins = cfg.window_samples / 2 + 1;
        let bin_hz = cfg.sample_rate_hz as f64 / cfg.window_samples as f64;
        let lo = cfg.min_pitch as f64 - 0.5;
        let hi = cfg.max_pitch as f64 + 0.5;
        let taps = &mut self.taps;
        taps.clear();
        for bin in 1..n_bins {
            let f = bin as f64 * bin_hz;
            let q = 69.0 + 12.0 * (f / 440.0).log2() - tuning_cents as f64 / 100.0;
            if q < lo || q > hi {
                continue;
            }
            let below = q.floor();
            let frac = (q - below) as f32;
            for (p, w) in [(below, 1.0 - frac), (below + 1.0, frac)] {
                if w > 0.0 && p >= cfg.min_pitch as f64 && p <= cfg.max_pitch as f64 {
                    taps.push((bin as u32, (p as u8 - cfg.min_pitch) as u16, w));
                }
            }
        }
    }

    /// Number of semitone bands.
    pub fn pitches(&self) -> usize {
        self.pitch_class.len()
    }

    /// Semitone energies from a power spectrum (`out` has [`Self::pitches`] entries).
    pub fn apply(&self, power: &[f32], out: &mut [f32]) {
        out.iter_mut().for_each(|x| *x = 0.0);
        for &(bin, p, w) in &self.taps {
            out[p as usize] += w * power[bin as usize];
        }
    }

    /// Pitch class of a pitch index.
    pub fn pitch_class(&self, pitch_index: usize) -> usize {
        self.pitch_class[pitch_index] as usize
    }
}

/// Per-frame analysis state: turns one window of samples into a [`FeatureFrame`]. Owns every
/// buffer it needs, so `analyze` does not allocate.
pub struct FrameAnalyzer {
    cfg: FeatureConfig,
    spectrum: PowerSpectrum,
    filterbank: SemitoneFilterbank,
    power: Vec<f32>,
    pitch_energy: Vec<f32>,
    log_pitch: Vec<f32>,
    prev_log_pitch: Vec<f32>,
    onset_decay: Chroma,
    onset_level: f32,
    /// Running peak of the frame energy, decaying per frame by `peak_decay`
    /// ([`FeatureConfig::silence_below_peak_db`]).
    peak_energy: f32,
    peak_decay: f32,
    /// `10^(-silence_below_peak_db / 10)`.
    below_peak: f32,
    /// The last [`ATTACK_MEMORY_FRAMES`] frames' log semitone energies, each already the
    /// maximum over the semitone and its two neighbours (a ring, one row per frame).
    recent_log_max: Vec<f32>,
    /// Next row of `recent_log_max` to write.
    recent_row: usize,
    attack_level: f32,
    /// Set by [`Self::retune`]: the next frame's semitone energies are not comparable with
    /// the previous frame's, so it contributes no onset.
    retuned: bool,
}

/// Per-frame decay of the onset trace (about 0.1 s to fall to a third at 50 frames/s).
const ONSET_DECAY: f32 = 0.8;
/// Per-frame decay of the running onset level used for local normalisation (about 2 s).
const ONSET_LEVEL_DECAY: f32 = 0.99;

/// Frames of past log energy an attack must rise above (120 ms at 50 frames/s): longer than a
/// half period of an organ's tremolo or a singer's vibrato (5-7 Hz), shorter than most notes.
pub const ATTACK_MEMORY_FRAMES: usize = 6;

impl FrameAnalyzer {
    /// A fresh analyzer (no history).
    pub fn new(cfg: &FeatureConfig, tuning_cents: f32) -> Self {
        let spectrum = PowerSpectrum::new(cfg.window_samples);
        let filterbank = SemitoneFilterbank::new(cfg, tuning_cents);
        let n = filterbank.pitches();
        Self {
            cfg: cfg.clone(),
            power: vec![0.0; spectrum.bins()],
            spectrum,
            filterbank,
            pitch_energy: vec![0.0; n],
            log_pitch: vec![0.0; n],
            prev_log_pitch: vec![0.0; n],
            onset_decay: [0.0; N_CHROMA],
            onset_level: 0.0,
            peak_energy: 0.0,
            peak_decay: 0.5f64.powf(cfg.hop_s() / super::SILENCE_PEAK_HALF_LIFE_S) as f32,
            below_peak: 10f32.powf(-cfg.silence_below_peak_db / 10.0),
            recent_log_max: vec![0.0; n * ATTACK_MEMORY_FRAMES],
            recent_row: 0,
            attack_level: 0.0,
            retuned: false,
        }
    }

    /// Use another tuning (cents from A4 = 440 Hz) from the next frame on; no allocation.
    pub fn retune(&mut self, tuning_cents: f32) {
        self.filterbank.retune(&self.cfg, tuning_cents);
        self.retuned = true;
    }

    /// Total semitone energy below which the frame just analysed counted as silence: the
    /// absolute floor or the level [`FeatureConfig::silence_below_peak_db`] below the running
    /// peak, whichever is higher.
    pub fn silence_level(&self) -> f32 {
        self.cfg
            .silence_energy
            .max(self.below_peak * self.peak_energy)
    }

    /// Analyse one window given as the two halves of a circular buffer (oldest first).
    pub fn analyze_split(&mut self, first: &[f32], second: &[f32], out: &mut FeatureFrame) {
        self.spectrum.process_split(first, second, &mut self.power);
        self.filterbank.apply(&self.power, &mut self.pitch_energy);
        let retuned = std::mem::take(&mut self.retuned);

        let gamma = self.cfg.log_compression;
        let mut raw = [0.0f32; N_CHROMA];
        let mut onset = [0.0f32; N_CHROMA];
        let mut energy = 0.0f32;
        let mut log_sum = 0.0f32;
        for (p, &e) in self.pitch_energy.iter().enumerate() {
            log_sum += (e + 1e-12).ln();
            let pc = self.filterbank.pitch_class(p);
            raw[pc] += e;
            energy += e;
            let l = (1.0 + gamma * e).ln();
            self.log_pitch[p] = l;
            // Onsets per pitch, not per class: a new note in a class already sounding in another
            // octave still counts.
            if !retuned {
                onset[pc] += (l - self.prev_log_pitch[p]).max(0.0);
            }
        }
        out.attack = if retuned {
            // Energies under another tuning are not comparable with the remembered ones.
            self.recent_log_max
                .iter_mut()
                .for_each(|v| *v = f32::INFINITY);
            [0.0; N_CHROMA]
        } else {
            self.attack()
        };
        self.remember_log_max();
        std::mem::swap(&mut self.log_pitch, &mut self.prev_log_pitch);

        out.energy = energy;
        let n = self.pitch_energy.len().max(1) as f32;
        self.peak_energy = (self.peak_energy * self.peak_decay).max(energy);
        let silence = self.silence_level();
        out.flatness = if energy < silence {
            1.0
        } else {
            ((log_sum / n).exp() / (energy / n + 1e-12)).clamp(0.0, 1.0)
        };
        if energy < silence {
            out.chroma = super::SILENT_CHROMA;
        } else {
            let mut c = [0.0f32; N_CHROMA];
            for (dst, &r) in c.iter_mut().zip(&raw) {
                *dst = (1.0 + gamma * r).ln();
            }
            normalize(&mut c);
            out.chroma = c;
        }

        // Locally adaptive normalisation (causal): divide by a slowly decaying running maximum
        // of the onset strength, so soft and loud passages give comparable onset vectors.
        let strength: f32 = onset.iter().sum();
        self.onset_level = (self.onset_level * ONSET_LEVEL_DECAY).max(strength);
        let scale = if self.onset_level > 1e-3 {
            1.0 / self.onset_level
        } else {
            0.0
        };
        for (d, &o) in self.onset_decay.iter_mut().zip(&onset) {
            *d = (*d * ONSET_DECAY).max(o * scale);
        }
        out.onset = self.onset_decay;
    }
}

impl FrameAnalyzer {
    /// This frame's attacks (`self.log_pitch`) against the remembered maxima, per class,
    /// relative to the running level of attacks.
    fn attack(&mut self) -> Chroma {
        let n = self.log_pitch.len();
        let mut attack = [0.0f32; N_CHROMA];
        for (p, &l) in self.log_pitch.iter().enumerate() {
            let past = (0..ATTACK_MEMORY_FRAMES)
                .map(|r| self.recent_log_max[r * n + p])
                .fold(f32::NEG_INFINITY, f32::max);
            let rise = l - past;
            if rise > 0.0 {
                attack[self.filterbank.pitch_class(p)] += rise;
            }
        }
        let strength: f32 = attack.iter().sum();
        self.attack_level = (self.attack_level * ONSET_LEVEL_DECAY).max(strength);
        if self.attack_level > 1e-3 {
            attack.iter_mut().for_each(|a| *a /= self.attack_level);
        }
        attack
    }

    /// Remember this frame's log energies, each the maximum over its semitone and the two
    /// next to it (a vibrato moves energy between neighbours).
    fn remember_log_max(&mut self) {
        let n = self.log_pitch.len();
        let row = &mut self.recent_log_max[self.recent_row * n..(self.recent_row + 1) * n];
        for (p, r) in row.iter_mut().enumerate() {
            let lo = p.saturating_sub(1);
            let hi = (p + 1).min(n - 1);
            *r = self.log_pitch[lo..=hi]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
        }
        self.recent_row = (self.recent_row + 1) % ATTACK_MEMORY_FRAMES;
    }
}

/// L2-normalise in place; leaves an all-zero vector as it is.
pub fn normalize(v: &mut Chroma) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Incremental feature extractor: push samples in chunks of any size, get frames as soon as
/// they are complete. Frames are identical to [`extract_with_tuning`] on the concatenated input
/// (same frame convention; see the module docs). No allocation after construction.
pub struct StreamingExtractor {
    cfg: FeatureConfig,
    analyzer: FrameAnalyzer,
    /// Circular buffer holding the last `window_samples` samples.
    ring: Vec<f32>,
    write_pos: usize,
    since_last_frame: usize,
    frames_out: usize,
    tuning_cents: f32,
    /// Follows the performance's tuning when on (see [`Self::with_tuning_tracking`]).
    tracker: Option<TuningTracker>,
}

impl StreamingExtractor {
    /// A new extractor with a fixed tuning (cents from A4 = 440 Hz).
    pub fn new(cfg: &FeatureConfig, tuning_cents: f32) -> Self {
        Self {
            cfg: cfg.clone(),
            analyzer: FrameAnalyzer::new(cfg, tuning_cents),
            ring: vec![0.0; cfg.window_samples],
            write_pos: 0,
            since_last_frame: 0,
            frames_out: 0,
            tuning_cents,
            tracker: None,
        }
    }

    /// Estimate the tuning from the stream and keep checking it ([`TuningTracker`]): from the
    /// frame after a new estimate is accepted, the filterbank uses it. The decisions fall on
    /// frame boundaries counted in samples, so the frames do not depend on how the input is
    /// chunked, and [`extract_tracking_tuning`] gives the same frames offline.
    pub fn with_tuning_tracking(mut self) -> Self {
        self.tracker = Some(TuningTracker::new(&self.cfg, self.tuning_cents));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// The tuning in use (cents).
    pub fn tuning_cents(&self) -> f32 {
        self.tuning_cents
    }

    /// Frames produced so far.
    pub fn frames_out(&self) -> usize {
        self.frames_out
    }

    /// Latency of a frame from its last sample to its centre (s): half a window.
    pub fn centre_lag_s(&self) -> f64 {
        0.5 * self.cfg.window_samples as f64 / self.cfg.sample_rate_hz as f64
    }

    /// Take samples from the front of `input` until a frame is complete, and return it with
    /// its index; `None` once `input` is used up without completing one (the samples taken are
    /// kept for the next frame). Pull frames with
    /// `while let Some((k, frame)) = extractor.next_frame(&mut rest) { ... }`.
    pub fn next_frame(&mut self, input: &mut &[f32]) -> Option<(usize, FeatureFrame)> {
        let hop = self.cfg.hop_samples;
        let n = self.ring.len();
        while !input.is_empty() {
            let take = (hop - self.since_last_frame).min(input.len());
            let (now, rest) = input.split_at(take);
            for &x in now {
                self.ring[self.write_pos] = x;
                self.write_pos += 1;
                if self.write_pos == n {
                    self.write_pos = 0;
                }
            }
            if let Some(t) = self.tracker.as_mut() {
                t.push_samples(now);
            }
            *input = rest;
            self.since_last_frame += take;
            if self.since_last_frame == hop {
                self.since_last_frame = 0;
                let (newer, older) = self.ring.split_at(self.write_pos);
                let mut frame = FeatureFrame::default();
                self.analyzer.analyze_split(older, newer, &mut frame);
                let k = self.frames_out;
                self.frames_out += 1;
                if let Some(t) = self.tracker.as_mut() {
                    if let Some(cents) = t.frame_done(self.frames_out) {
                        self.analyzer.retune(cents);
                        self.tuning_cents = cents;
                    }
                }
                return Some((k, frame));
            }
        }
        None
    }

    /// Feed samples; `on_frame(index, frame)` is called for each completed frame (the offline
    /// form of [`Self::next_frame`]).
    pub fn push(&mut self, samples: &[f32], mut on_frame: impl FnMut(usize, &FeatureFrame)) {
        let mut rest = samples;
        while let Some((k, frame)) = self.next_frame(&mut rest) {
            on_frame(k, &frame);
        }
    }
}

/// Offline extraction with a given tuning (cents). Same frames as [`StreamingExtractor`].
pub fn extract_with_tuning(samples: &[f32], cfg: &FeatureConfig, tuning_cents: f32) -> Features {
    extract_with(StreamingExtractor::new(cfg, tuning_cents), samples)
}

/// Every frame of `samples` through `ex` (offline = streaming, by construction).
fn extract_with(mut ex: StreamingExtractor, samples: &[f32]) -> Features {
    let mut frames = Vec::with_capacity(samples.len() / ex.config().hop_samples + 1);
    ex.push(samples, |_, f| frames.push(*f));
    Features {
        config: ex.config().clone(),
        tuning_cents: ex.tuning_cents(),
        frames,
    }
}

/// Offline extraction with the tuning tracked as the follower tracks it (starting from
/// `initial_cents`): the same frames as a [`StreamingExtractor::with_tuning_tracking`] fed
/// the same samples in any chunks.
pub fn extract_tracking_tuning(
    samples: &[f32],
    cfg: &FeatureConfig,
    initial_cents: f32,
) -> Features {
    extract_with(
        StreamingExtractor::new(cfg, initial_cents).with_tuning_tracking(),
        samples,
    )
}

/// Offline extraction: estimates the tuning from the whole signal, then extracts frames.
pub fn extract(samples: &[f32], cfg: &FeatureConfig) -> Features {
    let tuning = estimate_tuning_cents(samples, cfg);
    extract_with_tuning(samples, cfg, tuning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f64], seconds: f64, rate: u32) -> Vec<f32> {
        let n = (seconds * rate as f64) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                freqs
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f * t).sin() * 0.3)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    fn midi_hz(p: f64) -> f64 {
        440.0 * 2f64.powf((p - 69.0) / 12.0)
    }

    #[test]
    fn pure_tone_lands_in_its_pitch_class() {
        let cfg = FeatureConfig::default();
        for pitch in [48.0, 57.0, 64.0, 71.0, 79.0] {
            let x = tone(&[midi_hz(pitch)], 1.0, cfg.sample_rate_hz);
            let f = extract_with_tuning(&x, &cfg, 0.0);
            let c = f.frames[f.len() - 5].chroma;
            let best = (0..12).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap_or(0);
            assert_eq!(best, pitch as usize % 12, "pitch {pitch}: {c:?}");
        }
    }

    #[test]
    fn c_major_triad_has_c_e_g() {
        let cfg = FeatureConfig::default();
        let x = tone(&[midi_hz(60.0), midi_hz(64.0), midi_hz(67.0)], 1.0, 22050);
        let f = extract_with_tuning(&x, &cfg, 0.0);
        let c = f.frames[40].chroma;
        let mut idx: Vec<usize> = (0..12).collect();
        idx.sort_by(|&a, &b| c[b].total_cmp(&c[a]));
        let mut top3 = idx[..3].to_vec();
        top3.sort();
        assert_eq!(top3, vec![0, 4, 7]);
        let norm: f32 = c.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn silence_gives_flat_chroma_and_no_onset() {
        let cfg = FeatureConfig::default();
        let f = extract_with_tuning(&vec![0.0; 22050], &cfg, 0.0);
        assert_eq!(f.len(), 50);
        for fr in &f.frames {
            assert!(fr.chroma.iter().all(|&v| (v - fr.chroma[0]).abs() < 1e-7));
            assert!(fr.onset.iter().all(|&v| v == 0.0));
        }
    }

    /// Silence is relative to the recording's own level (the running peak) above an absolute
    /// floor: after a loud chord, a tone 60 dB down is silence and one 40 dB down is music;
    /// a whole recording 60 dB below full scale is music.
    #[test]
    fn silence_is_relative_to_the_running_peak() {
        let cfg = FeatureConfig::default();
        let flat = 1.0 / (N_CHROMA as f32).sqrt();
        let is_flat = |c: &Chroma| c.iter().all(|&v| (v - flat).abs() < 1e-6);
        let e_pitch = midi_hz(64.0);
        let loud = tone(&[midi_hz(60.0), midi_hz(64.0), midi_hz(67.0)], 1.0, 22050);
        for (db, silent) in [(60.0, true), (40.0, false)] {
            let gain = 10f64.powf(-db / 20.0) as f32;
            let mut x = loud.clone();
            x.extend(tone(&[e_pitch], 1.0, 22050).iter().map(|v| v * gain));
            let f = extract_with_tuning(&x, &cfg, 0.0);
            let last = f.frames[f.len() - 5];
            assert_eq!(
                is_flat(&last.chroma),
                silent,
                "{db} dB down: {:?}",
                last.chroma
            );
            if !silent {
                let best = (0..12)
                    .max_by(|&a, &b| last.chroma[a].total_cmp(&last.chroma[b]))
                    .unwrap_or(0);
                assert_eq!(best, 4, "{:?}", last.chroma);
            }
        }
        // The same tone alone at -60 dBFS (power 1e-6, above the floor): music.
        let quiet: Vec<f32> = tone(&[e_pitch], 1.0, 22050)
            .iter()
            .map(|v| v * 1e-3 / 0.3)
            .collect();
        let f = extract_with_tuning(&quiet, &cfg, 0.0);
        assert!(!is_flat(&f.frames[f.len() - 5].chroma));
        // Below the absolute floor (-80 dBFS): silence.
        let tiny: Vec<f32> = quiet.iter().map(|v| v * 0.1).collect();
        let f = extract_with_tuning(&tiny, &cfg, 0.0);
        assert!(is_flat(&f.frames[f.len() - 5].chroma));
    }

    /// The running peak halves every [`super::super::SILENCE_PEAK_HALF_LIFE_S`]: by definition
    /// of the decay per frame.
    #[test]
    fn running_peak_halves_in_the_half_life() {
        let cfg = FeatureConfig::default();
        let a = FrameAnalyzer::new(&cfg, 0.0);
        let frames = super::super::SILENCE_PEAK_HALF_LIFE_S * cfg.frame_rate_hz();
        let left = (a.peak_decay as f64).powf(frames);
        assert!((left - 0.5).abs() < 1e-3, "{left}");
        assert!((a.below_peak - 1e-5).abs() < 1e-9, "{}", a.below_peak);
    }

    #[test]
    fn onset_fires_when_a_note_starts() {
        let cfg = FeatureConfig::default();
        let mut x = vec![0.0f32; 11025];
        x.extend(tone(&[midi_hz(62.0)], 0.5, 22050));
        let f = extract_with_tuning(&x, &cfg, 0.0);
        let before: f32 = f.frames[10].onset.iter().sum();
        let at = cfg.frame_at_s(0.5);
        let peak_frame = (at.saturating_sub(3)..at + 5)
            .max_by(|&a, &b| f.frames[a].onset[2].total_cmp(&f.frames[b].onset[2]))
            .unwrap_or(at);
        let o = f.frames[peak_frame].onset;
        assert_eq!(before, 0.0);
        // The onset is in D and dominates the onset vector.
        let best = (0..12).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap_or(0);
        assert_eq!(best, 2, "{o:?}");
        assert!(o[2] > 0.2, "{o:?}");
        // And it decays once the note is held.
        let later = f.frames[peak_frame + 20].onset[2];
        assert!(later < 0.2 * o[2], "{later} vs {}", o[2]);
    }

    #[test]
    fn detuned_tone_with_tuning_estimate_is_centred() {
        let cfg = FeatureConfig::default();
        // A4 played 30 cents sharp: with the tuning applied, the energy is in A, not split.
        let x = tone(&[midi_hz(69.3)], 1.0, 22050);
        let f = extract(&x, &cfg);
        assert!(
            (f.tuning_cents - 30.0).abs() < 5.0,
            "tuning {}",
            f.tuning_cents
        );
        let c = f.frames[30].chroma;
        let best = (0..12).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap_or(0);
        assert_eq!(best, 9, "{c:?}");
        // Centred: the window's leakage falls evenly on both neighbours (without the tuning
        // shift, 30 cents put a third of the energy on A# alone).
        assert!((c[8] - c[10]).abs() < 0.05, "{c:?}");
        let untuned = extract_with_tuning(&x, &cfg, 0.0).frames[30].chroma;
        assert!(untuned[10] - untuned[8] > 0.1, "{untuned:?}");
    }

    #[test]
    fn frame_convention() {
        let cfg = FeatureConfig::default();
        let f = extract_with_tuning(&vec![0.1; 4410], &cfg, 0.0);
        assert_eq!(f.len(), 10);
        assert!((cfg.frame_end_s(0) - 0.02).abs() < 1e-12);
        assert_eq!(cfg.frame_at_s(cfg.frame_centre_s(17)), 17);
    }
}

#[cfg(test)]
mod streaming_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The streaming extractor fed in arbitrary chunk sizes gives exactly the offline frames.
        #[test]
        fn streaming_equals_offline(chunks in proptest::collection::vec(1usize..3000, 1..40), seed in 0u64..1000) {
            let cfg = FeatureConfig::default();
            let total: usize = chunks.iter().sum();
            let mut rng = crate::test_util::Rng::new(seed.wrapping_add(1));
            let signal: Vec<f32> = (0..total)
                .map(|i| {
                    let noise = rng.next_f32() - 0.5;
                    0.3 * ((i as f32) * 0.0627).sin() + 0.05 * noise
                })
                .collect();
            let offline = extract_with_tuning(&signal, &cfg, 7.0);
            let mut ex = StreamingExtractor::new(&cfg, 7.0);
            let mut streamed = Vec::new();
            let mut at = 0;
            for c in &chunks {
                ex.push(&signal[at..at + c], |k, f| streamed.push((k, *f)));
                at += c;
            }
            prop_assert_eq!(streamed.len(), offline.len());
            for (k, (idx, f)) in streamed.iter().enumerate() {
                prop_assert_eq!(*idx, k);
                prop_assert_eq!(f, &offline.frames[k]);
            }
        }
    }
}
