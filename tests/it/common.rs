//! Material shared by the integration tests.

use std::path::PathBuf;
use std::sync::Arc;

use scorefollow::engine::{FollowConfig, Follower, FollowerEvent, RelocationReport};
use scorefollow::features::FeatureConfig;
use scorefollow::score::reference::{Reference, ScoreRendering};
use scorefollow::score::synth::{render_with, SynthOptions};
use scorefollow::score::Score;

/// A performer at `tempo` times the pace of the bundled Mozart score: the score rendered at
/// that pace with another timbre than the follower's reference (fewer, weaker partials, a
/// shorter decay) and no voicing. Returns the reference (the score as written), the samples
/// (at the analysis rate) and the ground truth: every distinct onset as (performance s,
/// score s).
pub fn mozart_at_tempo(tempo: f64) -> (Arc<Reference>, Vec<f32>, Vec<(f64, f64)>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scores/mozart_k331/score.mid");
    let score = Score::load(&path).expect("bundled score loads");
    let mut played = score.clone();
    for n in &mut played.notes {
        n.onset_s /= tempo;
        n.offset_s /= tempo;
        n.key_offset_s /= tempo;
    }
    played.duration_s /= tempo;
    let cfg = FeatureConfig::default();
    let audio = render_as_performer(&played);
    let mut onsets: Vec<f64> = score.notes.iter().map(|n| n.onset_s).collect();
    onsets.dedup_by(|a, b| (*a - *b).abs() < 0.01);
    let events = onsets.iter().map(|&s| (s / tempo, s)).collect();
    let reference = Arc::new(Reference::from_score(
        score,
        &path,
        &cfg,
        &ScoreRendering::default(),
    ));
    (reference, audio, events)
}

/// `score` played by the tests' performer: rendered at the analysis rate with another timbre
/// than the follower's reference (fewer, weaker partials, a shorter decay) and no voicing.
pub fn render_as_performer(score: &Score) -> Vec<f32> {
    render_with(
        score,
        FeatureConfig::default().sample_rate_hz,
        &SynthOptions {
            partials: 5,
            rolloff: 1.6,
            decay_s_at_c4: 0.9,
            ..SynthOptions::default()
        },
    )
}

/// A mono 16-bit PCM WAV file.
pub fn write_wav_mono(path: &std::path::Path, rate: u32, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&x| ((x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).expect("write wav");
}

/// A score file as the follower's reference (the default features and rendering).
pub fn score_reference(path: &std::path::Path) -> Arc<Reference> {
    let config = FollowConfig::default();
    Arc::new(
        Reference::from_score_file(path, &config.features, &config.rendering)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// A file of the bundled chorale (BWV 66.6: its score, printed score, performance, ground
/// truth).
pub fn chorale(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scores/bach_bwv66_6")
        .join(file)
}

/// The bundled chorale's performance, at the analysis rate.
pub fn chorale_performance() -> Vec<f32> {
    scorefollow::audio::decode::load_mono(
        &chorale("performance.flac"),
        FeatureConfig::default().sample_rate_hz,
    )
    .expect("bundled performance decodes")
}

/// A MusicXML text (an edited bundled score) as the follower's reference, through a temporary
/// file named after `name`.
pub fn musicxml_reference(text: &str, name: &str) -> Arc<Reference> {
    let path = std::env::temp_dir().join(format!(
        "scorefollow-{name}-{}.musicxml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("temp file");
    let reference = score_reference(&path);
    let _ = std::fs::remove_file(&path);
    reference
}

/// Share (%) of `events` (performance s, `midi` s) that `rows` (performance s, score s of the
/// printed `reference`, one per frame) report within 300 ms, causally, each position read by
/// printed beat in `midi` ([`scorefollow::eval::alignment::BeatMap`]).
pub fn within_300ms_by_printed_beat(
    reference: &Reference,
    midi: &Score,
    rows: &[(f64, f64)],
    events: &[(f64, f64)],
) -> f64 {
    let score = reference.score().expect("a score");
    let map = scorefollow::eval::alignment::BeatMap::choose(score, midi);
    let xs: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let ys: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let ok = events
        .iter()
        .filter(|&&(t, s)| {
            let printed_s = scorefollow::eval::predict(&xs, &ys, t, true);
            (midi.s_at_beat(map.beat(score.beat_at_s(printed_s))) - s).abs() <= 0.3
        })
        .count();
    100.0 * ok as f64 / events.len().max(1) as f64
}

/// What a follower fed a whole performance reported.
pub struct Followed {
    /// (perf_time_s, score_time_s) per frame.
    pub rows: Vec<(f64, f64)>,
    /// The jumps it made.
    pub jumps: Vec<RelocationReport>,
    /// The key followed at the end.
    pub key_at_end: Option<usize>,
}

/// Feed `samples` (analysis rate) to a follower with `config` in chunks of `chunk` samples.
pub fn follow_in_chunks(
    reference: Arc<Reference>,
    config: &FollowConfig,
    samples: &[f32],
    chunk: usize,
) -> Followed {
    let mut f = Follower::new(reference, config).unwrap_or_else(|e| panic!("{e}"));
    let (mut rows, mut jumps) = (Vec::new(), Vec::new());
    for block in samples.chunks(chunk) {
        for ev in f.push(block, 0) {
            match ev {
                FollowerEvent::Position(p) => rows.push((p.perf_time_s, p.score_time_s)),
                FollowerEvent::Relocated(r) => jumps.push(r),
                FollowerEvent::Theme(_) | FollowerEvent::Ambiguous(_) => {}
            }
        }
    }
    Followed {
        rows,
        jumps,
        key_at_end: f.key_shift(),
    }
}

/// A full-speed replay sends a datagram every few hundred microseconds while the tests
/// load both cores; the default receive buffer (about 200 datagrams) overflowed when the
/// receiving thread was not scheduled for a second (CI lost 34 of 1946). Ask for 4 MiB
/// (the kernel caps it at `net.core.rmem_max`).
pub fn enlarge_receive_buffer(socket: &std::net::UdpSocket) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let bytes: libc::c_int = 4 << 20;
        // SAFETY: a valid descriptor and a pointer to an int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    }
}
