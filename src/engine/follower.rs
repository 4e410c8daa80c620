//! The follower's pure core: samples at the analysis rate in, events out, one frame at a time.
//!
//! A frame's way through it, in order ([`Follower::push`] and its [`Events`] iterator):
//! 1. the extractor completes a frame from the samples (`extractor.next_frame`);
//! 2. a silent or noise-like frame holds the position ([`PauseGate`]); any other frame steps
//!    the aligner (behind the key it follows, [`KeyTrial`]) and the tracker turns the match into
//!    the position now;
//! 3. the relocation state machine (`Relocation`) watches the match and, when the performer has jumped,
//!    confirms a new place with its shadow aligner; the follower jumps there and emits a
//!    [`FollowerEvent::Relocated`] before the frame's position;
//! 4. the position is mapped to score time, beats and bars and emitted as
//!    [`FollowerEvent::Position`].
//!
//! Nothing here allocates per frame after construction (checked by an allocation-counting
//! test), blocks, or knows about threads and outputs: [`super::run`] does that.

use std::sync::Arc;

use super::confidence::{ConfidenceModel, Evidence, EvidenceTracker};
use super::config::{
    AlignerConfig, FollowConfig, PauseGate, Transposition, TuningSetting, WrittenPitch,
};
use crate::align::cost::{cosine_distance, TransposedReference};
use crate::align::oltw::{Oltw, OltwConfig};
use crate::align::onset_gate::{onset_sides, OnsetGate};
use crate::align::relocate::{RelocateConfig, Relocator, MAX_ALTERNATIVES};
use crate::align::soft_online::{SoftOnline, SoftOnlineConfig};
use crate::align::tempo::{TempoAdaptive, TempoAdaptiveConfig, TempoScales};
use crate::align::tracker::{Tracked, Tracker};
use crate::align::transpose::KeyTrial;
use crate::align::{transpose_frame, AlignStep, OnlineAligner};
use crate::features::{FeatureConfig, FeatureFrame, StreamingExtractor, N_CHROMA};
use crate::output::{Label, PositionEvent, ThemeEvent};
use crate::score::reference::{written_pitch_verdict, PitchVerdict, Reference};
use crate::score::structure::Unfolding;
use crate::spot::streaming::{StreamHit, StreamingSpotter};
use crate::{Error, Result};

/// A jump the follower made to follow the performer (after a skip, a repeat, a change of key).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelocationReport {
    /// Performance time (s) at which the jump was confirmed.
    pub perf_time_s: f64,
    /// Performance time (s) at which the match started to go bad (about when the performer
    /// jumped).
    pub suspect_since_s: f64,
    /// Score time (s) the follower left.
    pub from_score_s: f64,
    /// Score time (s) it continued from.
    pub to_score_s: f64,
    /// Mean CENS distance of the confirming match (0 = identical).
    pub cost: f32,
    /// Confidence of the position the follower continued from (0-1).
    pub confidence: f32,
    /// Key (semitones the performance is above the score, 0-11) the follower was in.
    pub from_key_shift: usize,
    /// Key it continued in (differs from `from_key_shift` after a change of key).
    pub key_shift: usize,
}

/// What the follower reports.
#[derive(Clone, Debug, PartialEq)]
pub enum FollowerEvent {
    /// The position after one frame (one per frame).
    Position(PositionEvent),
    /// The follower jumped; the position of the same frame follows.
    Relocated(RelocationReport),
    /// A theme occurrence heard in the stream (`follow --themes`).
    Theme(ThemeEvent),
    /// The follower jumped into music the piece has more than once: the places that fit, the
    /// one followed first; it follows the others alongside and switches (a
    /// [`FollowerEvent::Relocated`]) as soon as the music tells them apart.
    Ambiguous(AmbiguousReport),
}

/// Places that fit equally after a jump.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AmbiguousReport {
    /// Performance time (s).
    pub perf_time_s: f64,
    /// (score time s, bar) of each place, the one followed first; the first `n` are valid.
    pub candidates: [(f64, i32); MAX_ALTERNATIVES + 1],
    /// How many places.
    pub n: usize,
}

/// Theme spotting alongside following: its own chroma stage (the spotter's settings differ
/// from the follower's) feeding a [`StreamingSpotter`].
#[derive(Clone, Debug)]
pub struct ThemeSpotting {
    /// The spotter, built from the queries.
    pub spotter: StreamingSpotter,
    /// Theme ids, in the spotter's order.
    pub ids: Vec<String>,
    /// The chroma configuration the spotter expects.
    pub features: FeatureConfig,
}

struct ThemeState {
    spotting: ThemeSpotting,
    extractor: StreamingExtractor,
    hits: Vec<StreamHit>,
}

/// Builds the aligners of one follower (the key trial's twelve, the relocation's shadow), all
/// sharing one feature-major copy of the reference (and, with the tempo model, one set of
/// scaled copies): for a one-hour reference that is 17 MB, not 220.
enum AlignerFactory {
    Oltw(OltwConfig),
    Soft(SoftOnlineConfig),
    Tempo(Arc<TempoScales>, SoftOnlineConfig, TempoAdaptiveConfig),
}

impl AlignerFactory {
    fn new(
        config: &AlignerConfig,
        reference: &Reference,
        shared: &Arc<TransposedReference>,
    ) -> Self {
        match config {
            AlignerConfig::Oltw(c) => AlignerFactory::Oltw(*c),
            AlignerConfig::Soft(c) => AlignerFactory::Soft(*c),
            AlignerConfig::SoftTempo {
                soft,
                tempo,
                scales,
            } => {
                // A printed score's tempo is its mark's (120 without one), not the
                // performer's: the scale is chosen from the first seconds.
                let printed = reference.score().is_some_and(|s| s.printed.is_some());
                let tempo = if printed {
                    TempoAdaptiveConfig {
                        startup_frames: TempoAdaptiveConfig::for_printed_score().startup_frames,
                        ..*tempo
                    }
                } else {
                    *tempo
                };
                AlignerFactory::Tempo(
                    Arc::new(TempoScales::new(&reference.frames, shared.clone(), scales)),
                    *soft,
                    tempo,
                )
            }
        }
    }

    fn make(
        &self,
        reference: &Reference,
        shared: &Arc<TransposedReference>,
    ) -> Box<dyn OnlineAligner> {
        match self {
            AlignerFactory::Oltw(c) => Box::new(Oltw::with_transposed(
                reference.frames.clone(),
                shared.clone(),
                *c,
            )),
            AlignerFactory::Soft(c) => Box::new(SoftOnline::with_transposed(
                reference.frames.clone(),
                shared.clone(),
                *c,
            )),
            AlignerFactory::Tempo(scales, soft, tempo) => {
                Box::new(TempoAdaptive::new(scales.clone(), *soft, *tempo))
            }
        }
    }
}

/// Re-localisation as one state machine: it watches how well the current place matches, and
/// when the match stays poor it searches the whole reference ([`Relocator`]); a candidate
/// starts the shadow aligner there, and the jump is confirmed once the shadow has matched
/// better for long enough.
struct Relocation {
    relocator: Relocator,
    /// The key (semitones above the score) the relocator's history was heard in; a change of
    /// key starts its history again.
    heard_in_key: Option<usize>,
    /// Follows a candidate place, fed the frames in the candidate's key; after a jump into
    /// music the piece has more than once, the other place.
    shadow: Box<dyn OnlineAligner>,
    checking: bool,
    /// The candidate being checked: its alternatives, as offsets (reference frames) from it.
    candidate_alternatives: ([f64; MAX_ALTERNATIVES], usize),
    /// Aligners for the other places of an ambiguous jump.
    others: [Box<dyn OnlineAligner>; MAX_ALTERNATIVES],
    /// While a candidate with other places is checked, the other places are followed too:
    /// the summed local costs of the shadow (first) and of each other place, the other
    /// places' latest positions (reference frames), and the frames summed.
    check_costs: [f32; MAX_ALTERNATIVES + 1],
    check_positions: [f64; MAX_ALTERNATIVES],
    check_frames: u32,
    /// After a jump with alternatives: the other places are followed alongside until the music
    /// tells them apart.
    doubt: Option<Doubt>,
}

/// Several places fit after a jump: the one followed, and the first `n` of `others`.
#[derive(Clone, Copy, Debug)]
struct Doubt {
    /// Frames since the jump.
    frames: u32,
    /// How many other places.
    n: usize,
    /// Smoothed local cost of the followed place, and of each other place.
    main_cost: f32,
    other_costs: [f32; MAX_ALTERNATIVES],
    /// Frames after which the doubt ends either way.
    until: u32,
}

/// Longest the other place of an ambiguous jump is followed (performance frames, 12 s).
const DOUBT_FRAMES: u32 = 600;
/// How long the place after a written repeat is followed alongside from the bar before it
/// (performance frames, 5 s).
const REPEAT_DOUBT_FRAMES: u32 = 250;
/// Frames before the two places' costs are compared (1 s, as a candidate's check).
const DOUBT_MIN_FRAMES: u32 = 50;
/// Smoothing of the two places' local costs (per frame: about 1 s).
const DOUBT_SMOOTHING: f32 = 0.02;

/// What the relocation state machine tells the follower after a frame.
enum Verdict {
    /// Jump there.
    Jump(Jump),
    /// The other place of an ambiguous jump fits clearly better: jump there.
    Switch(Jump),
}

/// A confirmed jump, for the follower to make.
struct Jump {
    /// Other places that fit as well (reference frames), the first `n_alternatives`.
    alternatives: [f64; MAX_ALTERNATIVES],
    n_alternatives: usize,
    ref_frame: f64,
    cost: f32,
    suspect_for_frames: usize,
    from_key_shift: usize,
    key_shift: usize,
}

/// How much worse (mean cosine distance over the candidate's check) a place nearer the current
/// position, in the direction of the jump, may match than the best place and still be landed
/// on. Music the piece has twice (a chorale's repeated first phrase) matches the search about
/// equally at both statements; the best match is then a coin toss, while a performer going
/// back or ahead most often goes to the nearer one (a repeat, a skip of a few bars). Measured
/// on the dev corpus (`eval --mode follow`, 35 cases, and `--against audio`): 0.02 and 0.05
/// give the same positions; the BWV 7.7 repeat case, whose jump landed on the earlier
/// statement (13.5 s off) and switched 6.5 s later, lands right (83.6 -> 89.1 % within 300 ms
/// without the 5 s after the jump, recovery 10.7 -> 6.2 s), no other prediction changes. The
/// same rule at the search, before the check (the nearer place checked instead of the best),
/// never jumped in that case against the reference recording, where the nearer place is the
/// wrong one and the check rejected it again and again.
const NEARER_PLACE_COST_TOLERANCE: f32 = 0.02;

/// Of the other places a confirmed jump has (`alternatives`, reference frames, with their mean
/// local costs over the check), the one to land on instead of the checked place `best` (its
/// position and mean cost): the nearest to the current position `from` in the direction of the
/// jump, if it is nearer than `best` and matched within [`NEARER_PLACE_COST_TOLERANCE`] of it.
fn nearer_place(
    from: f64,
    (best, best_cost): (f64, f32),
    alternatives: &[f64],
    costs: &[f32],
) -> Option<usize> {
    let forward = best > from;
    let distance = |at: f64| (at - from).abs();
    alternatives
        .iter()
        .zip(costs)
        .enumerate()
        .filter(|&(_, (&at, &cost))| {
            cost <= best_cost + NEARER_PLACE_COST_TOLERANCE
                && (at > from) == forward
                && distance(at) < distance(best)
        })
        .min_by(|a, b| distance(*a.1 .0).total_cmp(&distance(*b.1 .0)))
        .map(|(k, _)| k)
}

/// Largest step of the aligner's match (reference frames) that counts as following on, not a
/// jump, when it crosses a written repeat.
const MAX_REPEAT_STEP_FRAMES: f64 = 25.0;

/// A printed score's written repeats, in order, as `(reference frame where the bar the repeat
/// goes back from starts, reference frame of the same music for a performer who leaves the
/// repeat out)`. The unfolded measures go back where a measure's printed index is not above
/// the one before it; leaving the repeat out goes on at the first later measure printed after
/// the one the repeat went back from (past the repeat, the first ending skipped for the
/// second), and the bar before it is that measure's start less the bar's length. Following
/// both places from that bar on, they hear the same music until the repeat, and part there.
fn repeat_branches(reference: &Reference) -> Vec<(f64, f64)> {
    if let Some(unfolding) = reference.unfolding.as_deref() {
        return structure_branches(unfolding);
    }
    let Some(score) = reference.score() else {
        return Vec::new();
    };
    let Some(layout) = score.printed.as_ref() else {
        return Vec::new();
    };
    let m = &layout.measures;
    let frame = |beat: f64| reference.frame_at_score_s(score.s_at_beat(beat)) as f64;
    (0..m.len().saturating_sub(1))
        .filter(|&k| m[k + 1].printed <= m[k].printed)
        .filter_map(|k| {
            let last = m[k].printed;
            m[k + 2..].iter().find(|x| x.printed > last).map(|on| {
                let bar_before = frame(m[k + 1].start_beat) - frame(m[k].start_beat);
                (frame(m[k].start_beat), frame(on.start_beat) - bar_before)
            })
        })
        .collect()
}

/// How far before a structure file's repeat (reference frames, 1 s) the place after it is
/// followed alongside: a structure file has no bars.
const STRUCTURE_REPEAT_LEAD_FRAMES: usize = 50;

/// [`repeat_branches`] of a reference unfolded by a structure file: where a section starts
/// before the end of the one played before it, the music goes back; a performer who leaves
/// that repeat out goes on from the end of the earlier section, where a later section (the
/// next one, past its repeated part, or one after it) plays it.
fn structure_branches(unfolding: &Unfolding) -> Vec<(f64, f64)> {
    let seg = &unfolding.segments;
    (0..seg.len().saturating_sub(1))
        .filter_map(|i| {
            let (_, start, len) = seg[i];
            let end = start + len;
            let (next_at, next_start, _) = seg[i + 1];
            if next_start >= end {
                return None;
            }
            let on = unfolding.to_unfolded(end).find(|&u| u >= next_at)?;
            let lead = STRUCTURE_REPEAT_LEAD_FRAMES.min(len).min(next_at);
            Some(((next_at - lead) as f64, on.saturating_sub(lead) as f64))
        })
        .collect()
}

/// The cosine distance between `frame` and the reference frame nearest `at` (NaN on an empty
/// reference).
fn local_cost(reference: &Reference, frame: &FeatureFrame, at: f64) -> f32 {
    let idx = (at.round().max(0.0) as usize).min(reference.frames.len().saturating_sub(1));
    reference
        .frames
        .get(idx)
        .map_or(f32::NAN, |rf| cosine_distance(&frame.chroma, &rf.chroma))
}

impl Relocation {
    fn new(
        reference: &Reference,
        cfg: RelocateConfig,
        mut make: impl FnMut() -> Box<dyn OnlineAligner>,
    ) -> Self {
        let shadow = make();
        let others = std::array::from_fn(|_| make());
        let chroma: Vec<crate::features::Chroma> =
            reference.frames.iter().map(|f| f.chroma).collect();
        Self {
            relocator: Relocator::new(&chroma, reference.config.frame_rate_hz(), cfg),
            heard_in_key: None,
            shadow,
            checking: false,
            candidate_alternatives: ([0.0; MAX_ALTERNATIVES], 0),
            check_costs: [0.0; MAX_ALTERNATIVES + 1],
            check_positions: [0.0; MAX_ALTERNATIVES],
            check_frames: 0,
            others,
            doubt: None,
        }
    }

    /// A frame that holds the position (a pause): the relocator hears it, with no match cost.
    fn hold(&mut self, frame: &FeatureFrame, ref_frame_now: f64) {
        if let Some(shift) = self.heard_in_key {
            let c = transpose_frame(frame, shift).chroma;
            self.relocator.push(&c, f32::NAN, ref_frame_now);
        }
    }

    /// One followed frame: `key_now` is the key the follower is in (None during the key
    /// trial, when nothing is watched), `ref_frame` where the aligner matched it.
    fn step(
        &mut self,
        reference: &Reference,
        frame: &FeatureFrame,
        key_now: Option<usize>,
        ref_frame: f64,
    ) -> Option<Verdict> {
        let shift = key_now?;
        if self.heard_in_key != Some(shift) {
            self.relocator.reset();
            self.heard_in_key = Some(shift);
            self.doubt = None;
        }
        let in_key = if shift == 0 {
            *frame
        } else {
            transpose_frame(frame, shift)
        };
        let main_cost = local_cost(reference, &in_key, ref_frame);
        if self.doubt.is_some() {
            return self.doubt_step(reference, &in_key, main_cost, shift);
        }
        if let Some(candidate) = self.relocator.push(&in_key.chroma, main_cost, ref_frame) {
            self.shadow
                .reset_to(candidate.ref_frame.round().max(0.0) as usize);
            self.checking = true;
            let mut offsets = [0.0; MAX_ALTERNATIVES];
            for (o, a) in offsets
                .iter_mut()
                .zip(&candidate.alternatives[..candidate.n_alternatives])
            {
                *o = a - candidate.ref_frame;
            }
            self.candidate_alternatives = (offsets, candidate.n_alternatives);
            self.check_costs = [0.0; MAX_ALTERNATIVES + 1];
            self.check_frames = 0;
            for (k, (other, &at)) in self
                .others
                .iter_mut()
                .zip(&candidate.alternatives[..candidate.n_alternatives])
                .enumerate()
            {
                other.reset_to(at.round().max(0.0) as usize);
                self.check_positions[k] = at;
            }
            return None;
        }
        if !self.checking {
            return None;
        }
        let key_change = self.relocator.verifying_key_change()?;
        let in_new_key = if key_change == 0 {
            in_key
        } else {
            transpose_frame(&in_key, key_change)
        };
        let s = self.shadow.step(&in_new_key);
        let suspect_for_frames = self.relocator.suspect_for_frames();
        let shadow_cost = local_cost(reference, &in_new_key, s.ref_frame);
        let n_alt = self.candidate_alternatives.1;
        if key_change == 0 && n_alt > 0 {
            self.check_frames += 1;
            self.check_costs[0] += shadow_cost;
            for k in 0..n_alt {
                let o = self.others[k].step(&in_new_key);
                self.check_positions[k] = o.ref_frame;
                self.check_costs[k + 1] += local_cost(reference, &in_new_key, o.ref_frame);
            }
        }
        let accepted = self.relocator.verify(main_cost, shadow_cost)?;
        self.checking = false;
        if !accepted {
            return None;
        }
        let (offsets, n) = self.candidate_alternatives;
        let mut alternatives = [0.0; MAX_ALTERNATIVES];
        for (a, o) in alternatives.iter_mut().zip(&offsets[..n]) {
            *a = (s.ref_frame + o).max(0.0);
        }
        let mut landing = s.ref_frame;
        if key_change == 0 && n > 0 && self.check_frames > 0 {
            alternatives[..n].copy_from_slice(&self.check_positions[..n]);
            let frames = self.check_frames as f32;
            let mean_costs = self.check_costs.map(|c| c / frames);
            if let Some(k) = nearer_place(
                ref_frame,
                (landing, mean_costs[0]),
                &alternatives[..n],
                &mean_costs[1..],
            ) {
                std::mem::swap(&mut landing, &mut alternatives[k]);
            }
        }
        if n > 0 && key_change == 0 {
            // Music the piece has more than once: follow the other places alongside.
            for (other, &at) in self.others.iter_mut().zip(&alternatives[..n]) {
                other.reset_to(at.round() as usize);
            }
            self.doubt = Some(Doubt {
                frames: 0,
                n,
                main_cost: 0.0,
                other_costs: [0.0; MAX_ALTERNATIVES],
                until: DOUBT_FRAMES,
            });
        }
        Some(Verdict::Jump(Jump {
            alternatives,
            n_alternatives: n,
            ref_frame: landing,
            cost: s.cost,
            suspect_for_frames,
            from_key_shift: shift,
            key_shift: (shift + key_change) % N_CHROMA,
        }))
    }

    /// One frame of an ambiguous jump's doubt: the other places' aligners step, and when one
    /// matches clearly better than the place followed (the music has parted), the follower
    /// switches to it; after [`DOUBT_FRAMES`] the doubt ends either way.
    fn doubt_step(
        &mut self,
        reference: &Reference,
        in_key: &FeatureFrame,
        main_cost: f32,
        shift: usize,
    ) -> Option<Verdict> {
        let mut d = self.doubt?;
        d.frames += 1;
        let mut positions = [0.0; MAX_ALTERNATIVES];
        let mut costs = [f32::NAN; MAX_ALTERNATIVES];
        for ((other, p), c) in self.others[..d.n]
            .iter_mut()
            .zip(positions.iter_mut())
            .zip(costs.iter_mut())
        {
            let s = other.step(in_key);
            *p = s.ref_frame;
            *c = local_cost(reference, in_key, s.ref_frame);
        }
        let smooth = |avg: &mut f32, x: f32, first: bool| {
            if x.is_finite() {
                *avg = if first {
                    x
                } else {
                    *avg + DOUBT_SMOOTHING * (x - *avg)
                };
            }
        };
        smooth(&mut d.main_cost, main_cost, d.frames == 1);
        for (avg, &c) in d.other_costs[..d.n].iter_mut().zip(&costs) {
            smooth(avg, c, d.frames == 1);
        }
        self.doubt = Some(d);
        let best = (0..d.n).min_by(|&a, &b| d.other_costs[a].total_cmp(&d.other_costs[b]))?;
        let ratio = self.relocator.config().verify_ratio;
        // The place followed and every other place must be clearly worse than the best one: two
        // that still fit alike are no reason to move.
        let runner_up = (0..d.n)
            .filter(|&k| k != best)
            .map(|k| d.other_costs[k])
            .fold(d.main_cost, f32::min);
        if d.frames >= DOUBT_MIN_FRAMES && d.other_costs[best] < ratio * runner_up {
            self.doubt = None;
            return Some(Verdict::Switch(Jump {
                alternatives: [0.0; MAX_ALTERNATIVES],
                n_alternatives: 0,
                ref_frame: positions[best],
                cost: costs[best],
                suspect_for_frames: d.frames as usize,
                from_key_shift: shift,
                key_shift: shift,
            }));
        }
        if d.frames >= d.until {
            self.doubt = None;
        }
        None
    }

    /// The follower reached the bar a written repeat goes back from: a performer who will
    /// leave the repeat out is at `skip_to` (reference frames), the same music on the last
    /// pass. That place is followed alongside for [`REPEAT_DOUBT_FRAMES`], as the other place
    /// of an ambiguous jump is, and the follower switches to it once it matches clearly better
    /// (after the repeat, if the performer went on). Nothing happens while a candidate is
    /// checked or another doubt runs.
    fn consider_repeat_skip(&mut self, skip_to: f64) {
        if self.checking || self.doubt.is_some() || self.heard_in_key.is_none() {
            return;
        }
        self.others[0].reset_to(skip_to.round().max(0.0) as usize);
        self.doubt = Some(Doubt {
            frames: 0,
            n: 1,
            main_cost: 0.0,
            other_costs: [0.0; MAX_ALTERNATIVES],
            until: REPEAT_DOUBT_FRAMES,
        });
    }

    /// After a seek: forget the history, any candidate and any doubt.
    fn reset(&mut self) {
        self.relocator.reset();
        self.checking = false;
        self.doubt = None;
    }
}

/// Features -> aligner -> tracker -> positions, for one performance against one reference.
/// Independent instances do not share state (two followers in one process do not interfere).
pub struct Follower {
    reference: Arc<Reference>,
    extractor: StreamingExtractor,
    /// The aligner, behind the transposition it follows in (one shift once the key is known;
    /// a confirmed relocation into another key switches it).
    aligner: KeyTrial,
    tracker: Tracker,
    /// What the performer has certainly played: the heard position stays below its limit.
    onset_gate: Option<OnsetGate>,
    pause: Option<PauseGate>,
    start_score_s: f64,
    last: Option<Tracked>,
    relocation: Option<Relocation>,
    themes: Option<ThemeState>,
    evidence: EvidenceTracker,
    confidence: ConfidenceModel,
    /// A printed score's written repeats: where the bar they go back from starts, and where the
    /// same music is for a performer who leaves the repeat out (reference frames, in order).
    repeat_branches: Vec<(f64, f64)>,
    /// While the written-pitch trial runs: the same follower on the score with its transposing
    /// parts at written pitch ([`Reference::written_pitch`]), fed the same samples.
    written_pitch_trial: Option<Box<Follower>>,
    /// The trial's evidence: over the frames heard where the two renderings differ at the
    /// matched place (the transposing parts play there), the summed local match (cosine
    /// distance between the performance's chroma and each rendering's there) and their count.
    trial_fit_sounding: f64,
    trial_fit_written: f64,
    trial_frames: u32,
    /// Frames heard since the trial began.
    trial_age_frames: u32,
    /// This follower follows the transposing parts at written pitch.
    at_written_pitch: bool,
}

/// Longest the written-pitch trial runs (frames heard, 3 minutes): a transposing part that has
/// not told the renderings apart by then is followed at sounding pitch.
pub const WRITTEN_PITCH_TRIAL_MAX_FRAMES: u32 = 9000;

impl Follower {
    /// A follower at `config.start_score_s` in `reference`, which must have been analysed with
    /// `config.features` (the performance's frames are compared with the reference's).
    pub fn new(reference: Arc<Reference>, config: &FollowConfig) -> Result<Self> {
        let at_written_pitch = |written: &Arc<Reference>| -> Result<Follower> {
            let mut follower = Follower::new(written.clone(), config)?;
            follower.at_written_pitch = true;
            Ok(follower)
        };
        if let (Some(written), WrittenPitch::Written) =
            (&reference.written_pitch, config.written_pitch)
        {
            return at_written_pitch(written);
        }
        if reference.config != config.features {
            return Err(Error::invalid(
                "reference",
                reference.path.display().to_string(),
                "was analysed with other feature settings than the follower's",
            ));
        }
        if reference.is_empty() {
            return Err(Error::invalid(
                "reference",
                reference.path.display().to_string(),
                "has no frames",
            ));
        }
        let features = &config.features;
        let extractor = match config.tuning {
            TuningSetting::Fixed(cents) => StreamingExtractor::new(features, cents),
            TuningSetting::Track => StreamingExtractor::new(features, 0.0).with_tuning_tracking(),
        };
        let shared = Arc::new(TransposedReference::new(&reference.frames));
        let factory = AlignerFactory::new(&config.aligner, &reference, &shared);
        let make = || factory.make(&reference, &shared);
        // A single-key KeyTrial passes frames of shift 0 through untouched; it is there so a
        // relocation can switch the key.
        let mut aligner = match config.transposition {
            Transposition::Fixed(k) => KeyTrial::new(&[k], 0, make),
            Transposition::Detect { trial_frames } => {
                let shifts: Vec<usize> = (0..N_CHROMA).collect();
                KeyTrial::new(&shifts, trial_frames, make)
            }
        };
        if config.start_score_s > 0.0 {
            aligner.reset_to(reference.frame_at_score_s(config.start_score_s));
        }
        let onset_frames: Arc<[u32]> = reference.onset_frames().into();
        let mut tracker = Tracker::new(config.tracker);
        if config.flow_in_notes {
            tracker = tracker.with_onsets(onset_frames.clone());
        }
        let onset_gate = config.onset_gate.map(|cfg| {
            let sides = onset_sides(&reference.frames, &onset_frames, &cfg);
            let mut gate = OnsetGate::new(sides, cfg);
            if config.start_score_s > 0.0 {
                gate.reset_to(reference.frame_at_score_s(config.start_score_s) as f64);
            }
            gate
        });
        let relocation = config
            .relocate
            .clone()
            .map(|cfg| Relocation::new(&reference, cfg, || factory.make(&reference, &shared)));
        let written_pitch_trial = match (&reference.written_pitch, config.written_pitch) {
            (Some(written), WrittenPitch::Auto) => Some(Box::new(at_written_pitch(written)?)),
            _ => None,
        };
        Ok(Self {
            written_pitch_trial,
            trial_fit_sounding: 0.0,
            trial_fit_written: 0.0,
            trial_frames: 0,
            trial_age_frames: 0,
            at_written_pitch: false,
            extractor,
            aligner,
            tracker,
            onset_gate,
            pause: config.pause,
            start_score_s: config.start_score_s,
            last: None,
            relocation,
            themes: None,
            evidence: EvidenceTracker::default(),
            confidence: config.confidence,
            repeat_branches: repeat_branches(&reference),
            reference,
        })
    }

    /// Spot themes in the same samples ([`FollowerEvent::Theme`], each occurrence once, shortly
    /// after it ends).
    pub fn with_themes(mut self, spotting: ThemeSpotting) -> Self {
        self.themes = Some(ThemeState {
            extractor: StreamingExtractor::new(&spotting.features, 0.0),
            hits: Vec::with_capacity(16),
            spotting,
        });
        self
    }

    /// The reference followed.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The key followed: semitones the performance is above the score (0-11), or None while
    /// the key trial is still running. Follows confirmed changes of key.
    pub fn key_shift(&self) -> Option<usize> {
        self.aligner.key_shift()
    }

    /// The tuning of the performance assumed by the extractor (cents from A4 = 440 Hz).
    pub fn tuning_cents(&self) -> f32 {
        self.extractor.tuning_cents()
    }

    /// Feed samples at the analysis rate; `capture_wall_ns` is when the newest of them entered
    /// the ring. The returned iterator analyses them frame by frame as it is advanced and
    /// yields each frame's events; dropping it early still analyses the rest (their events are
    /// discarded), so the follower always ends up having heard every sample.
    pub fn push<'a>(&'a mut self, samples: &'a [f32], capture_wall_ns: u64) -> Events<'a> {
        self.settle_written_pitch_trial();
        if let Some(written) = self.written_pitch_trial.as_mut() {
            written.push(samples, capture_wall_ns).for_each(drop);
        }
        Events {
            follower: self,
            samples,
            rest: samples,
            capture_wall_ns,
            pending_ambiguous: None,
            pending: None,
            themes_done: false,
        }
    }

    /// True while the written-pitch trial still compares the score at sounding pitch with its
    /// transposing parts at written pitch.
    pub fn in_written_pitch_trial(&self) -> bool {
        self.written_pitch_trial.is_some()
    }

    /// True once the trial found the transposing parts played as written and the follower
    /// went on at written pitch.
    pub fn at_written_pitch(&self) -> bool {
        self.at_written_pitch
    }

    /// Once the written-pitch trial has heard enough of the transposing parts
    /// ([`written_pitch_verdict`]), go on with the follower that matches them; past
    /// [`WRITTEN_PITCH_TRIAL_MAX_FRAMES`] undecided, at sounding pitch.
    fn settle_written_pitch_trial(&mut self) {
        if self.written_pitch_trial.is_none() {
            return;
        }
        let n = f64::from(self.trial_frames.max(1));
        let (sounding_fit, written_fit) = (self.trial_fit_sounding / n, self.trial_fit_written / n);
        let verdict = written_pitch_verdict(sounding_fit, written_fit, self.trial_frames);
        if verdict == PitchVerdict::Undecided
            && self.trial_age_frames < WRITTEN_PITCH_TRIAL_MAX_FRAMES
        {
            return;
        }
        let Some(mut written) = self.written_pitch_trial.take() else {
            return;
        };
        if verdict == PitchVerdict::Written {
            tracing::info!(
                "written-pitch trial: the transposing parts are played as written \
                 (mean match {written_fit:.3} against {sounding_fit:.3} at sounding pitch, \
                 {} frames): following them at written pitch",
                self.trial_frames
            );
            written.themes = self.themes.take();
            *self = *written;
        } else {
            tracing::info!(
                "written-pitch trial: the transposing parts are played at sounding pitch \
                 (mean match {sounding_fit:.3} against {written_fit:.3} at written pitch, \
                 {} frames)",
                self.trial_frames
            );
        }
    }

    /// Restart following at score time `score_s` (a seek).
    pub fn seek(&mut self, score_s: f64) {
        if let Some(written) = self.written_pitch_trial.as_mut() {
            written.seek(score_s);
        }
        self.aligner
            .reset_to(self.reference.frame_at_score_s(score_s));
        self.tracker.reset();
        self.last = None;
        self.evidence.jumped();
        if let Some(r) = self.relocation.as_mut() {
            r.reset();
        }
        if let Some(g) = self.onset_gate.as_mut() {
            g.reset_to(self.reference.frame_at_score_s(score_s) as f64);
        }
    }

    /// Restart following at the configured start (a reset).
    pub fn restart(&mut self) {
        self.seek(self.start_score_s);
    }

    /// One frame through the stages; the jump made on it, if any.
    fn follow_frame(
        &mut self,
        k: usize,
        frame: &FeatureFrame,
        capture_wall_ns: u64,
    ) -> (
        PositionEvent,
        Option<(RelocationReport, Option<AmbiguousReport>)>,
    ) {
        // A pause (silence, noise) holds the position, unless the score is silent there too:
        // then the pause is the written rest, and the aligner goes through it.
        let pause = match (self.last, self.pause) {
            (Some(last), Some(gate)) if gate.holds(frame) => Some((last, gate)),
            _ => None,
        };
        let held = pause
            .filter(|(last, gate)| !gate.rest_at(&self.reference.frames, last.ref_frame_now))
            .map(|(last, _)| last);
        let (mut tracked, jump) = match held {
            // Nothing to hear: hold the position (and the aligner's state).
            Some(last) => {
                if let Some(r) = self.relocation.as_mut() {
                    r.hold(frame, last.ref_frame_now);
                }
                (last, None)
            }
            None => self.step_aligner(k, frame),
        };
        // In the reference's key (the key trial's best so far while it runs).
        let shift = self.aligner.shift();
        let in_key = if shift == 0 {
            *frame
        } else {
            transpose_frame(frame, shift)
        };
        if let Some(gate) = self.onset_gate.as_mut() {
            let limit = if jump.is_some() {
                gate.reset_to(tracked.heard_ref_frame);
                gate.limit()
            } else {
                gate.update(&in_key, tracked.raw_ref_frame, pause.is_some())
            };
            tracked.heard_ref_frame = tracked.heard_ref_frame.min(limit - 1.0);
        }
        if jump.is_some() {
            self.evidence.jumped();
        }
        let fit = local_cost(&self.reference, &in_key, tracked.raw_ref_frame);
        if held.is_none() && self.written_pitch_trial.is_some() {
            self.trial_age_frames = self.trial_age_frames.saturating_add(1);
            if let Some(written) = self.reference.written_pitch.as_deref() {
                let written_fit = local_cost(written, &in_key, tracked.raw_ref_frame);
                let idx = tracked.raw_ref_frame.round().max(0.0) as usize;
                if self.reference.written_pitch_differs_at(idx)
                    && fit.is_finite()
                    && written_fit.is_finite()
                {
                    self.trial_fit_sounding += f64::from(fit);
                    self.trial_fit_written += f64::from(written_fit);
                    self.trial_frames += 1;
                }
            }
        }
        let run = self.evidence.update(fit, tracked.confidence);
        let hop_s = self.reference.config.hop_s();
        let evidence = Evidence {
            mass: tracked.confidence,
            spread_s: (tracked.spread_frames as f64 * hop_s) as f32,
            fit_fast: run.fit_fast,
            fit_slow: run.fit_slow,
            since_jump_s: ((run.frames_since_jump as f64 * hop_s) as f32).min(Evidence::SETTLED_S),
            doubt: if self.relocation.as_ref().is_some_and(|r| r.doubt.is_some()) {
                1.0
            } else {
                0.0
            },
            holding: if held.is_some() { 1.0 } else { 0.0 },
            fit_usual: run.fit_usual,
            mass_recent_min: run.mass_recent_min,
            tempo: tracked.tempo as f32,
            flow_s: ((tracked.ref_frame_now - tracked.raw_ref_frame) * hop_s) as f32,
            waiting_s: (tracked.waiting_frames as f64 * hop_s) as f32,
        };
        self.last = Some(tracked);
        (self.position(k, &tracked, &evidence, capture_wall_ns), jump)
    }

    fn step_aligner(
        &mut self,
        k: usize,
        frame: &FeatureFrame,
    ) -> (Tracked, Option<(RelocationReport, Option<AmbiguousReport>)>) {
        let step = self.aligner.step(frame);
        let tracked = self.tracker.update(&step);
        let previous = self.last.map(|l| l.raw_ref_frame);
        if let (Some(r), Some(previous)) = (self.relocation.as_mut(), previous) {
            // An ordinary step (not a jump) into the bar a repeat goes back from.
            if (0.0..MAX_REPEAT_STEP_FRAMES).contains(&(step.ref_frame - previous)) {
                for &(branch, skip_to) in &self.repeat_branches {
                    if previous < branch && step.ref_frame >= branch {
                        r.consider_repeat_skip(skip_to + (step.ref_frame - branch));
                    }
                }
            }
        }
        let key_now = self.aligner.key_shift();
        let verdict = match self.relocation.as_mut() {
            Some(r) => r.step(&self.reference, frame, key_now, step.ref_frame),
            None => None,
        };
        let jump = match verdict {
            None => return (tracked, None),
            Some(Verdict::Jump(jump) | Verdict::Switch(jump)) => jump,
        };
        let (alternatives, n_alternatives) = (jump.alternatives, jump.n_alternatives);
        let (to, report) = self.make_jump(k, &step, &tracked, jump);
        let ambiguous = (n_alternatives > 0).then(|| {
            let mut candidates = [(0.0, 0); MAX_ALTERNATIVES + 1];
            let place = |frame: f64| {
                let score_s = self.reference.score_time_s(frame);
                (score_s, self.reference.musical_position(score_s).1)
            };
            candidates[0] = place(to.ref_frame_now);
            for (c, &a) in candidates[1..]
                .iter_mut()
                .zip(&alternatives[..n_alternatives])
            {
                *c = place(a);
            }
            AmbiguousReport {
                perf_time_s: report.perf_time_s,
                candidates,
                n: n_alternatives + 1,
            }
        });
        (to, Some((report, ambiguous)))
    }

    /// Continue from a confirmed place (and key).
    fn make_jump(
        &mut self,
        k: usize,
        step: &AlignStep,
        from: &Tracked,
        jump: Jump,
    ) -> (Tracked, RelocationReport) {
        let cfg = &self.reference.config;
        if jump.key_shift != jump.from_key_shift {
            tracing::info!(
                "key change at {:.2} s: performance now {} semitones above the score (was {})",
                cfg.frame_end_s(k),
                jump.key_shift,
                jump.from_key_shift
            );
            self.aligner.set_shift(jump.key_shift);
        }
        self.aligner
            .reset_to(jump.ref_frame.round().max(0.0) as usize);
        self.tracker.reset();
        let to = self.tracker.update(&AlignStep {
            ref_frame: jump.ref_frame,
            confidence: step.confidence,
            spread_frames: step.spread_frames,
            cost: jump.cost,
        });
        let report = RelocationReport {
            perf_time_s: cfg.frame_end_s(k),
            suspect_since_s: cfg.frame_end_s(k.saturating_sub(jump.suspect_for_frames)),
            from_score_s: self.reference.score_time_s(from.ref_frame_now),
            to_score_s: self.reference.score_time_s(to.ref_frame_now),
            cost: jump.cost,
            confidence: to.confidence,
            from_key_shift: jump.from_key_shift,
            key_shift: jump.key_shift,
        };
        (to, report)
    }

    /// The musical position of a tracked frame, in the score's own terms (printed bar, pass,
    /// page, system and label of a MusicXML score).
    fn position(
        &self,
        k: usize,
        tracked: &Tracked,
        evidence: &Evidence,
        capture_wall_ns: u64,
    ) -> PositionEvent {
        let reference = &self.reference;
        let at = reference.score_position(tracked.ref_frame_now);
        let mut label = Label::default();
        let _ = at.write_label(&mut label);
        PositionEvent {
            frame: k as u64,
            perf_time_s: reference.config.frame_end_s(k),
            score_time_s: at.time_s,
            heard_score_s: reference.score_time_s(tracked.heard_ref_frame),
            beat: at.beat,
            bar: at.bar,
            beat_in_bar: at.beat_in_bar,
            tempo: tracked.tempo as f32,
            confidence: self.confidence.probability(evidence),
            spread_s: (tracked.spread_frames as f64 * reference.config.hop_s()) as f32,
            capture_wall_ns,
            evidence: *evidence,
            key_shift: self.aligner.key_shift().map_or(-1, |k| k as i8),
            tuning_cents: self.extractor.tuning_cents(),
            pass: at.pass,
            page: at.page,
            system: at.system,
            label,
        }
    }

    /// Feed the theme spotter the whole chunk; its hits wait in `hits`.
    fn spot_themes(&mut self, samples: &[f32]) {
        let Some(state) = self.themes.as_mut() else {
            return;
        };
        let mut rest = samples;
        while let Some((_, frame)) = state.extractor.next_frame(&mut rest) {
            state.spotting.spotter.push(&frame.chroma, &mut state.hits);
        }
        // Oldest first, as found.
        state.hits.reverse();
    }

    fn next_theme(&mut self) -> Option<ThemeEvent> {
        let state = self.themes.as_mut()?;
        let h = state.hits.pop()?;
        Some(ThemeEvent {
            theme_id: state.spotting.ids.get(h.theme).cloned().unwrap_or_default(),
            start_s: h.hit.start_s,
            end_s: h.hit.end_s,
            score: h.hit.score,
        })
    }
}

/// The events of one [`Follower::push`], produced frame by frame as it is advanced: for each
/// frame a relocation (if the follower jumped on it) then its position; after the last frame,
/// the theme occurrences found in the chunk.
pub struct Events<'a> {
    follower: &'a mut Follower,
    samples: &'a [f32],
    rest: &'a [f32],
    capture_wall_ns: u64,
    /// The rest of the current frame's events (an ambiguity, then the position).
    pending_ambiguous: Option<AmbiguousReport>,
    pending: Option<PositionEvent>,
    themes_done: bool,
}

impl Iterator for Events<'_> {
    type Item = FollowerEvent;

    fn next(&mut self) -> Option<FollowerEvent> {
        if let Some(a) = self.pending_ambiguous.take() {
            return Some(FollowerEvent::Ambiguous(a));
        }
        if let Some(p) = self.pending.take() {
            return Some(FollowerEvent::Position(p));
        }
        if let Some((k, frame)) = self.follower.extractor.next_frame(&mut self.rest) {
            let (position, jump) = self.follower.follow_frame(k, &frame, self.capture_wall_ns);
            return Some(match jump {
                Some((report, ambiguous)) => {
                    self.pending_ambiguous = ambiguous;
                    self.pending = Some(position);
                    FollowerEvent::Relocated(report)
                }
                None => FollowerEvent::Position(position),
            });
        }
        if !self.themes_done {
            self.themes_done = true;
            self.follower.spot_themes(self.samples);
        }
        self.follower.next_theme().map(FollowerEvent::Theme)
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule spelt out: every place in turn, nearest first, the first that qualifies.
    fn oracle(from: f64, best: (f64, f32), alternatives: &[f64], costs: &[f32]) -> Option<usize> {
        let mut order: Vec<usize> = (0..alternatives.len()).collect();
        order.sort_by(|&a, &b| {
            (alternatives[a] - from)
                .abs()
                .total_cmp(&(alternatives[b] - from).abs())
        });
        order.into_iter().find(|&k| {
            let same_side = (alternatives[k] > from) == (best.0 > from);
            let nearer = (alternatives[k] - from).abs() < (best.0 - from).abs();
            let as_good = costs[k] <= best.1 + NEARER_PLACE_COST_TOLERANCE;
            same_side && nearer && as_good
        })
    }

    /// A repeat: from frame 1000 the best match is the first statement at 200, the second at
    /// 600 matched as well, so the follower lands on the second.
    #[test]
    fn a_nearer_place_that_matched_as_well_is_landed_on() {
        assert_eq!(
            nearer_place(1000.0, (200.0, 0.30), &[600.0], &[0.31]),
            Some(0)
        );
    }

    #[test]
    fn a_nearer_place_that_matched_worse_is_not() {
        let worse = 0.30 + NEARER_PLACE_COST_TOLERANCE + 0.01;
        assert_eq!(
            nearer_place(1000.0, (200.0, 0.30), &[600.0], &[worse]),
            None
        );
    }

    #[test]
    fn places_the_other_way_or_farther_are_not_landed_on() {
        assert_eq!(
            nearer_place(1000.0, (200.0, 0.3), &[1400.0, 100.0], &[0.1, 0.1]),
            None
        );
    }

    #[test]
    fn of_several_the_nearest_is_taken_backwards_and_forwards() {
        let costs = [0.3; 3];
        assert_eq!(
            nearer_place(1000.0, (200.0, 0.3), &[400.0, 800.0, 600.0], &costs),
            Some(1)
        );
        assert_eq!(
            nearer_place(100.0, (900.0, 0.3), &[500.0, 300.0, 50.0], &costs),
            Some(1)
        );
    }

    proptest::proptest! {
        #[test]
        fn nearer_place_matches_the_oracle(
            from in 0.0f64..2000.0,
            best in 0.0f64..2000.0,
            best_cost in 0.0f32..1.0,
            places in proptest::collection::vec((0.0f64..2000.0, 0.0f32..1.0), 0..MAX_ALTERNATIVES),
        ) {
            let (alternatives, costs): (Vec<f64>, Vec<f32>) = places.into_iter().unzip();
            let got = nearer_place(from, (best, best_cost), &alternatives, &costs);
            let want = oracle(from, (best, best_cost), &alternatives, &costs);
            // Ties in distance may pick either; the distance chosen must agree.
            let dist = |k: Option<usize>| k.map(|k| (alternatives[k] - from).abs());
            proptest::prop_assert_eq!(dist(got), dist(want));
        }
    }
}
