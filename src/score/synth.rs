//! A fast additive synthesiser that turns a [`Score`] into audio, so that the score's reference
//! features come out of the same chroma extractor as the performance.
//!
//! Each note is a harmonic tone of up to [`SynthOptions::partials`] partials with amplitude
//! `1 / h^rolloff`, band-limited below 0.45 × the sample rate. Its waveform is one period in a
//! per-pitch wavetable (built once per pitch that occurs), read with a 32-bit fixed-point phase
//! accumulator and linear interpolation, so the inner loop is a table read, a multiply-add and
//! a recursive envelope step: no `sin()` per sample.
//!
//! Envelope: linear attack over `attack_s`, then either an exponential decay with a time
//! constant that halves every two octaves (piano-like; [`SynthOptions::decay_s_at_c4`] at
//! middle C), or a constant level for GM programs that sustain (organ, strings, ensembles,
//! brass, reeds, pipes, synth leads and pads; see [`sustains`]). From the (pedal-extended)
//! offset the level falls exponentially to -60 dB over `release_s`, after which the note
//! contributes exactly nothing. Decaying notes stop early once below -80 dB.
//!
//! The output time axis is MIDI time: sample `n` is at `n / sample_rate_hz` seconds, so a note
//! starting at `onset_s` starts at sample `round(onset_s × rate)`. Drum notes are skipped. The
//! output is not normalised: a single note at velocity 127 peaks near `gain`.

use super::midi::{Note, Score};

/// log2 of the wavetable length (one period).
const TABLE_BITS: u32 = 11;
/// Wavetable length (samples per period).
const TABLE_LEN: usize = 1 << TABLE_BITS;
/// Bits of the phase accumulator below the table index.
const FRAC_BITS: u32 = 32 - TABLE_BITS;
/// Highest partial frequency, as a fraction of the sample rate (below Nyquist with margin).
const MAX_PARTIAL_FRACTION: f64 = 0.45;
/// Level relative to the note's peak below which a decaying note is dropped (-80 dB).
const SILENT_RATIO: f32 = 1e-4;
/// Release ends at -60 dB, where the note is cut.
const RELEASE_END_LEVEL: f64 = 1e-3;

/// Synthesiser settings. `Default` is what [`render`] uses.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Harmonic partials per note (1 = sine), fewer for high notes near Nyquist.
    pub partials: usize,
    /// Partial `h` has amplitude `1 / h^rolloff`.
    pub rolloff: f64,
    /// Linear attack time (s).
    pub attack_s: f64,
    /// Exponential decay time constant at middle C (s) for decaying notes; it doubles every
    /// two octaves down and halves every two octaves up (clamped to 0.1..=10 s).
    pub decay_s_at_c4: f64,
    /// Time from the note's end to silence (s); the level falls to -60 dB over it.
    pub release_s: f64,
    /// Silence appended after the last note's end (s); at least `release_s` is used.
    pub tail_s: f64,
    /// Sustain at constant level for sustaining GM programs; when false every note decays.
    pub sustain_by_program: bool,
    /// Linear gain for a note of velocity 127 (amplitude scales with velocity / 127).
    pub gain: f32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            partials: 10,
            rolloff: 1.0,
            attack_s: 0.005,
            decay_s_at_c4: 1.5,
            release_s: 0.08,
            tail_s: 0.3,
            sustain_by_program: true,
            gain: 0.1,
        }
    }
}

/// True for GM programs (0-based) whose instruments hold their level while the key is down:
/// organs, bowed strings and ensembles, brass, reeds, pipes, synth leads and pads, bowed and
/// blown ethnic instruments. Pianos, mallets, guitars, basses, pizzicato, harp, timpani and
/// percussive programs decay.
pub fn sustains(program: u8) -> bool {
    matches!(program,
        16..=23      // organs
        | 40..=44    // violin..tremolo strings (45 pizzicato, 46 harp, 47 timpani decay)
        | 48..=54    // string ensembles, synth strings, choir, voice (55 orchestra hit decays)
        | 56..=95    // brass, reed, pipe, synth lead, synth pad
        | 109..=111  // bagpipe, fiddle, shanai
    )
}

/// Frequency (Hz) of a MIDI pitch at A4 = 440 Hz.
pub fn pitch_hz(pitch: u8) -> f64 {
    440.0 * 2f64.powf((pitch as f64 - 69.0) / 12.0)
}

/// Render `score` at `sample_rate_hz` with the default [`SynthOptions`].
pub fn render(score: &Score, sample_rate_hz: u32) -> Vec<f32> {
    render_with(score, sample_rate_hz, &SynthOptions::default())
}

/// Render `score` at `sample_rate_hz` with `options`. The result has
/// `ceil((duration_s + max(tail_s, release_s)) × rate)` samples.
pub fn render_with(score: &Score, sample_rate_hz: u32, options: &SynthOptions) -> Vec<f32> {
    render_voiced(score, sample_rate_hz, options, |_| 1.0)
}

/// [`render_with`], each note's amplitude also multiplied by `note_gain(i)` for note `i` of
/// `score.notes` (a voicing: a louder melody, softer accompaniment), not limited by the
/// velocity's range.
pub fn render_voiced(
    score: &Score,
    sample_rate_hz: u32,
    options: &SynthOptions,
    note_gain: impl Fn(usize) -> f32,
) -> Vec<f32> {
    let rate = sample_rate_hz.max(1) as f64;
    let tail_s = options.tail_s.max(options.release_s).max(0.0);
    let len = ((score.duration_s.max(0.0) + tail_s) * rate).ceil() as usize;
    let mut out = vec![0f32; len];
    let mut tables: Vec<Option<Box<[f32; TABLE_LEN + 1]>>> = vec![None; 128];
    for (i, note) in score.notes.iter().enumerate() {
        let f = pitch_hz(note.pitch);
        if note.is_drum || f >= MAX_PARTIAL_FRACTION * rate || note.pitch > 127 {
            continue;
        }
        let table = tables[note.pitch as usize]
            .get_or_insert_with(|| build_table(f, rate, options.partials, options.rolloff));
        render_note(&mut out, table, note, f, rate, options, note_gain(i));
    }
    out
}

/// One period of the band-limited harmonic tone of fundamental `f_hz`, peak-normalised, with a
/// guard sample (a copy of sample 0) so interpolation never wraps.
fn build_table(f_hz: f64, rate: f64, partials: usize, rolloff: f64) -> Box<[f32; TABLE_LEN + 1]> {
    let max_h = ((MAX_PARTIAL_FRACTION * rate / f_hz).floor() as usize)
        .min(partials)
        .max(1);
    let mut acc = vec![0f64; TABLE_LEN];
    for h in 1..=max_h {
        let a = (h as f64).powf(-rolloff);
        let w = std::f64::consts::TAU * h as f64 / TABLE_LEN as f64;
        for (i, x) in acc.iter_mut().enumerate() {
            *x += a * (w * i as f64).sin();
        }
    }
    let peak = acc.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-12);
    let mut table = Box::new([0f32; TABLE_LEN + 1]);
    for (t, x) in table.iter_mut().zip(&acc) {
        *t = (x / peak) as f32;
    }
    table[TABLE_LEN] = table[0];
    table
}

/// Decay time constant (s) of a decaying note of this pitch.
fn decay_tau_s(pitch: u8, decay_s_at_c4: f64) -> f64 {
    (decay_s_at_c4 * 2f64.powf(-(pitch as f64 - 60.0) / 24.0)).clamp(0.1, 10.0)
}

/// Oscillator state carried across envelope stages.
struct Osc<'a> {
    table: &'a [f32; TABLE_LEN + 1],
    phase: u32,
    inc: u32,
}

impl Osc<'_> {
    /// Add `out[i] += level_i × wave_i` where `level` starts at `level` and is multiplied by
    /// `step` each sample, with a linear ramp from `ramp` by `ramp_step` on top (ramp = 1 and
    /// ramp_step = 0 outside the attack). Returns the level after the last sample.
    #[inline]
    fn run(
        &mut self,
        out: &mut [f32],
        mut level: f32,
        step: f32,
        mut ramp: f32,
        ramp_step: f32,
    ) -> f32 {
        let scale = 1.0 / (1u32 << FRAC_BITS) as f32;
        for s in out {
            let idx = (self.phase >> FRAC_BITS) as usize;
            let frac = (self.phase & ((1 << FRAC_BITS) - 1)) as f32 * scale;
            let x0 = self.table[idx];
            let x1 = self.table[idx + 1];
            *s += level * ramp * (x0 + (x1 - x0) * frac);
            level *= step;
            ramp += ramp_step;
            self.phase = self.phase.wrapping_add(self.inc);
        }
        level
    }

    /// [`Osc::run`] without a ramp, computed in interleaved lanes of 8 consecutive samples:
    /// each lane steps its level by `step^8` and its phase by `8 × inc`, which breaks the
    /// sample-to-sample dependency chains so the loop runs several samples at once.
    #[inline]
    fn run_steady(&mut self, out: &mut [f32], level: f32, step: f32) -> f32 {
        const LANES: usize = 8;
        let scale = 1.0 / (1u32 << FRAC_BITS) as f32;
        let mask = (1u32 << FRAC_BITS) - 1;
        let mut levels = [0f32; LANES];
        let mut phases = [0u32; LANES];
        let mut l = level;
        for (j, (lv, ph)) in levels.iter_mut().zip(&mut phases).enumerate() {
            *lv = l;
            l *= step;
            *ph = self.phase.wrapping_add(self.inc.wrapping_mul(j as u32));
        }
        let step_block = step.powi(LANES as i32);
        let inc_block = self.inc.wrapping_mul(LANES as u32);
        let mut blocks = out.chunks_exact_mut(LANES);
        for block in &mut blocks {
            for ((s, lv), ph) in block.iter_mut().zip(&mut levels).zip(&mut phases) {
                let idx = (*ph >> FRAC_BITS) as usize;
                let frac = (*ph & mask) as f32 * scale;
                let x0 = self.table[idx];
                let x1 = self.table[idx + 1];
                *s += *lv * (x0 + (x1 - x0) * frac);
                *lv *= step_block;
                *ph = ph.wrapping_add(inc_block);
            }
        }
        self.phase = phases[0];
        self.run(blocks.into_remainder(), levels[0], step, 1.0, 0.0)
    }
}

fn render_note(
    out: &mut [f32],
    table: &[f32; TABLE_LEN + 1],
    note: &Note,
    f_hz: f64,
    rate: f64,
    o: &SynthOptions,
    note_gain: f32,
) {
    let start = (note.onset_s.max(0.0) * rate).round() as usize;
    if start >= out.len() {
        return;
    }
    let key_up = ((note.offset_s.max(note.onset_s) * rate).round() as usize).max(start);
    let release_n = (o.release_s.max(0.0) * rate).round() as usize;
    let end = (key_up + release_n).min(out.len());
    let attack_n = ((o.attack_s.max(0.0) * rate).round() as usize).max(1);

    let sustained = o.sustain_by_program && sustains(note.program);
    let decay_step = if sustained {
        1.0
    } else {
        (-1.0 / (decay_tau_s(note.pitch, o.decay_s_at_c4) * rate)).exp() as f32
    };
    let release_step = if release_n > 0 {
        (RELEASE_END_LEVEL.ln() / release_n as f64).exp() as f32
    } else {
        0.0
    };
    let mut osc = Osc {
        table,
        phase: 0,
        inc: (f_hz / rate * 2f64.powi(32)).round() as u32,
    };
    let peak = o.gain * note_gain * note.velocity as f32 / 127.0;
    let mut level = peak;

    // Attack (may be cut short by an early key release).
    let a_end = (start + attack_n).min(key_up).min(end);
    let ramp_step = 1.0 / attack_n as f32;
    level = osc.run(
        &mut out[start..a_end],
        level,
        decay_step,
        ramp_step,
        ramp_step,
    );
    let ramp_reached = (a_end - start) as f32 * ramp_step;
    level *= ramp_reached.min(1.0);

    // Hold: decaying or constant, until the key (or pedal) lets go.
    let mut pos = a_end;
    if !sustained {
        // Stop as soon as the decay has made the note inaudible.
        let silent = SILENT_RATIO * peak;
        let audible_n = if level > silent && decay_step < 1.0 {
            ((silent / level).ln() / decay_step.ln()).ceil() as usize
        } else {
            0
        };
        let silent_at = pos.saturating_add(audible_n);
        if silent_at < key_up {
            osc.run_steady(&mut out[pos..silent_at.min(end)], level, decay_step);
            return;
        }
    }
    level = osc.run_steady(&mut out[pos..key_up.max(pos).min(end)], level, decay_step);
    pos = key_up.max(pos).min(end);

    // Release.
    osc.run_steady(&mut out[pos..end], level, release_step * decay_step);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::timemap::{MeterMap, TempoMap, TickTiming};

    fn score_of(notes: Vec<Note>) -> Score {
        let duration_s = notes.iter().map(|n| n.offset_s).fold(0.0, f64::max);
        Score {
            notes,
            duration_s,
            markers: vec![],
            tempo_map: TempoMap::new(
                TickTiming::Metrical {
                    ticks_per_quarter: 480,
                },
                &[],
            )
            .unwrap(),
            meter_map: MeterMap::new(&[]).unwrap(),
            track_count: 1,
            printed: None,
            path: "synth-test.mid".into(),
        }
    }

    fn note(pitch: u8, onset_s: f64, offset_s: f64, program: u8, channel: u8) -> Note {
        Note {
            onset_s,
            offset_s,
            key_offset_s: offset_s,
            pitch,
            velocity: 127,
            channel,
            program,
            is_drum: channel == 9,
            track: 0,
        }
    }

    /// Reference: the same tone summed with `sin()` per partial per sample, sustained envelope
    /// without attack/release shaping.
    fn naive_tone(f: f64, rate: f64, partials: usize, n: usize) -> Vec<f64> {
        let max_h = ((MAX_PARTIAL_FRACTION * rate / f).floor() as usize)
            .min(partials)
            .max(1);
        let raw: Vec<f64> = (0..n)
            .map(|i| {
                (1..=max_h)
                    .map(|h| {
                        (std::f64::consts::TAU * h as f64 * f * i as f64 / rate).sin() / h as f64
                    })
                    .sum()
            })
            .collect();
        // Peak of one period, as the wavetable normalises by it.
        let period: Vec<f64> = (0..4096)
            .map(|i| {
                (1..=max_h)
                    .map(|h| {
                        (std::f64::consts::TAU * h as f64 * i as f64 / 4096.0).sin() / h as f64
                    })
                    .sum::<f64>()
            })
            .collect();
        let peak = period.iter().fold(0f64, |m, x| m.max(x.abs()));
        raw.iter().map(|x| x / peak).collect()
    }

    #[test]
    fn wavetable_matches_naive_additive_sum() {
        let rate = 22_050.0;
        let opts = SynthOptions {
            attack_s: 0.0,
            ..SynthOptions::default()
        };
        // An organ (program 19) sustains, so the level is constant between attack and release.
        let s = score_of(vec![note(57, 0.0, 1.0, 19, 0)]);
        let y = render_with(&s, rate as u32, &opts);
        let want = naive_tone(pitch_hz(57), rate, opts.partials, 22_050);
        let g = opts.gain as f64;
        let worst = (1..22_000)
            .map(|i| (y[i] as f64 / g - want[i]).abs())
            .fold(0f64, f64::max);
        assert!(worst < 2e-3, "max deviation {worst}");
    }

    #[test]
    fn silent_outside_note_and_release() {
        let rate = 8000;
        let s = score_of(vec![note(60, 0.5, 1.0, 0, 0)]);
        let y = render(&s, rate);
        let o = SynthOptions::default();
        assert_eq!(y.len(), ((1.0 + o.tail_s) * rate as f64).ceil() as usize);
        assert!(y[..4000].iter().all(|&x| x == 0.0));
        let release_end = ((1.0 + o.release_s) * rate as f64).round() as usize;
        assert!(y[release_end..].iter().all(|&x| x == 0.0));
        assert!(y[4001..8000].iter().any(|&x| x.abs() > 0.01));
    }

    #[test]
    fn drums_skipped_and_piano_decays_while_organ_holds() {
        let rate = 8000;
        let drums = score_of(vec![note(38, 0.0, 1.0, 0, 9)]);
        assert!(render(&drums, rate).iter().all(|&x| x == 0.0));
        let rms = |y: &[f32]| (y.iter().map(|x| x * x).sum::<f32>() / y.len() as f32).sqrt();
        let piano = render(&score_of(vec![note(60, 0.0, 3.0, 0, 0)]), rate);
        let organ = render(&score_of(vec![note(60, 0.0, 3.0, 19, 0)]), rate);
        // Equal windows centred on 0.1 s and 2.55 s: with tau = 1.5 s at C4 the piano's
        // level falls by e^(-2.45 / 1.5) between them.
        let early = 400..1200;
        let late = 20_000..20_800;
        let ratio = rms(&piano[late.clone()]) / rms(&piano[early.clone()]);
        assert!(
            (ratio - (-2.45f32 / 1.5).exp()).abs() < 0.01,
            "ratio {ratio}"
        );
        let ratio = rms(&organ[late]) / rms(&organ[early]);
        assert!((ratio - 1.0).abs() < 0.02, "organ ratio {ratio}");
    }

    #[test]
    fn decayed_notes_stop_at_minus_80_db() {
        // tau 0.1 s at C4: -80 dB (e^-9.21) is reached 0.921 s after the attack.
        let rate = 8000;
        let opts = SynthOptions {
            decay_s_at_c4: 0.1,
            ..SynthOptions::default()
        };
        let y = render_with(&score_of(vec![note(60, 0.0, 3.0, 0, 0)]), rate, &opts);
        let last = y.iter().rposition(|&x| x != 0.0).unwrap_or(0) as f64 / rate as f64;
        assert!((last - 0.926).abs() < 0.01, "last sound at {last} s");
    }

    #[test]
    fn high_notes_stay_below_nyquist() {
        let t = build_table(3000.0, 8000.0, 10, 1.0);
        // 0.45 * 8000 / 3000 = 1.2 -> only the fundamental: a pure sine.
        for (i, x) in t.iter().take(TABLE_LEN).enumerate() {
            let want = (std::f64::consts::TAU * i as f64 / TABLE_LEN as f64).sin();
            assert!((*x as f64 - want).abs() < 1e-6);
        }
        // Notes at or above 0.45 * rate are dropped entirely.
        let s = score_of(vec![note(127, 0.0, 0.5, 0, 0)]);
        assert!(render(&s, 8000).iter().all(|&x| x == 0.0));
    }
}
