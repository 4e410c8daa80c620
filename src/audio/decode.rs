//! Decoding audio files (WAV, FLAC, MP3, Ogg Vorbis) with symphonia 0.6 to mono `f32`,
//! resampled when asked.
//!
//! [`MonoDecoder`] streams: it holds one packet of audio at a time plus the resampler's small
//! state, so a 10-hour file costs no more memory than a 10-second one. [`load_mono`] collects
//! its output.
//!
//! Damage handling: a packet the codec rejects is skipped and counted; a file that ends early
//! (truncated, or a read error mid-file) yields what was decoded and is an error only if no
//! audio came out at all. Either way the decoder says so in [`MonoDecoder::damage`] (an
//! [`InputError`]) rather than printing it: the follower reports it at the end of the run,
//! [`load_mono`] logs it. Non-finite samples are replaced by 0 and counted.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::resample::{expected_len, StreamResampler};
use crate::{Error, Result};

/// Lowest sample rate accepted (Hz). Below this no musical content survives.
pub const MIN_RATE_HZ: u32 = 4_000;
/// Highest sample rate accepted (Hz). Above this a header is more likely corrupt than real.
pub const MAX_RATE_HZ: u32 = 768_000;

/// Basic facts about an audio file, from its header.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    /// Native sample rate (Hz).
    pub sample_rate_hz: u32,
    /// Channel count.
    pub channels: usize,
    /// Length in frames, when the container states it.
    pub frames: Option<u64>,
    /// Duration (s), when the container states the length (`frames / sample_rate_hz`).
    pub duration_s: Option<f64>,
}

/// A file that could not be decoded to its end: what was decoded is still used (followed,
/// aligned), and this says where and why it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError {
    /// The file.
    pub path: PathBuf,
    /// Audio decoded (s of the file).
    pub decoded_s: f64,
    /// The length its header states (s), when it states one.
    pub stated_s: Option<f64>,
    /// What went wrong: a read error, a container error, packets the codec rejected, a file
    /// shorter than its header says (several joined by "; ").
    pub reason: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input {} is damaged ({}): decoded to {:.2} s",
            self.path.display(),
            self.reason,
            self.decoded_s
        )?;
        match self.stated_s {
            Some(s) => write!(f, " of the {s:.2} s its header states"),
            None => Ok(()),
        }
    }
}

fn audio_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audio {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

struct Opened {
    format: Box<dyn FormatReader>,
    track_id: u32,
    info: AudioInfo,
    decoder: Box<dyn AudioDecoder>,
}

fn open(path: &Path) -> Result<Opened> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(audio_err(path, "the file is empty (0 bytes)"));
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymError::IoError(io) => audio_err(
                path,
                format!("not a recognised audio file, or cut short in its header ({io})"),
            ),
            other => audio_err(path, format!("not a recognised audio file ({other})")),
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| audio_err(path, "the file has no audio track"))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| audio_err(path, "the audio track has no codec parameters"))?;
    let rate = params
        .sample_rate
        .ok_or_else(|| audio_err(path, "the header does not state a sample rate"))?;
    check_rate(path, rate)?;
    let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported codec ({e})")))?;
    let frames = track.num_frames;
    let info = AudioInfo {
        sample_rate_hz: rate,
        channels,
        frames,
        duration_s: frames.map(|f| f as f64 / rate as f64),
    };
    let track_id = track.id;
    Ok(Opened {
        format,
        track_id,
        info,
        decoder,
    })
}

fn check_rate(path: &Path, rate: u32) -> Result<()> {
    if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
        return Err(audio_err(
            path,
            format!("sample rate {rate} Hz is outside {MIN_RATE_HZ}..={MAX_RATE_HZ} Hz"),
        ));
    }
    Ok(())
}

/// Read the header of an audio file: rate, channels, duration.
pub fn probe(path: &Path) -> Result<AudioInfo> {
    open(path).map(|o| o.info)
}

/// Decode a whole file to mono at `target_rate_hz` (band-limited resampling when it differs
/// from the file's rate). Sample `k` of the result is at time `k / target_rate_hz` s.
pub fn load_mono(path: &Path, target_rate_hz: u32) -> Result<Vec<f32>> {
    let mut dec = MonoDecoder::open(path, Some(target_rate_hz))?;
    let mut all = Vec::with_capacity(dec.expected_len().unwrap_or(0) as usize);
    let mut chunk = Vec::new();
    while dec.next_chunk(&mut chunk)? {
        all.extend_from_slice(&chunk);
    }
    if let Some(d) = dec.damage() {
        tracing::warn!("{d}; using what was decoded");
    }
    if dec.nonfinite_samples() > 0 {
        tracing::warn!(
            path = %path.display(),
            "replaced {} NaN/infinite sample(s) by 0",
            dec.nonfinite_samples()
        );
    }
    Ok(all)
}

/// Streaming decoder: yields the file as consecutive chunks of mono `f32` at a chosen rate.
pub struct MonoDecoder {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: AudioInfo,
    output_rate_hz: u32,
    resampler: Option<StreamResampler>,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    /// Output samples still to discard at the start (resampler delay).
    skip: usize,
    source_frames: u64,
    emitted: u64,
    bad_packets: u64,
    nonfinite: u64,
    /// Why decoding stopped before the end of the stream (a read or container error).
    stopped_by: Option<String>,
    eof: bool,
    done: bool,
}

impl std::fmt::Debug for MonoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoDecoder")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("output_rate_hz", &self.output_rate_hz)
            .finish_non_exhaustive()
    }
}

impl MonoDecoder {
    /// Open `path`. `target_rate_hz = None` keeps the file's own rate; `Some(r)` resamples
    /// to `r` Hz (4 000..=768 000) with the filter delay removed, so output sample `k` is at
    /// `k / r` s.
    pub fn open(path: &Path, target_rate_hz: Option<u32>) -> Result<Self> {
        let o = open(path)?;
        let rate = o.info.sample_rate_hz;
        let output_rate_hz = target_rate_hz.unwrap_or(rate);
        if target_rate_hz.is_some() {
            check_rate(path, output_rate_hz).map_err(|_| {
                Error::invalid(
                    "target sample rate",
                    format!("{output_rate_hz} Hz"),
                    format!("must be within {MIN_RATE_HZ}..={MAX_RATE_HZ} Hz"),
                )
            })?;
        }
        let resampler = if output_rate_hz != rate {
            Some(StreamResampler::new(rate, output_rate_hz)?)
        } else {
            None
        };
        let skip = resampler.as_ref().map_or(0, |r| r.output_delay_samples());
        Ok(Self {
            path: path.to_path_buf(),
            format: o.format,
            decoder: o.decoder,
            track_id: o.track_id,
            info: o.info,
            output_rate_hz,
            resampler,
            interleaved: Vec::new(),
            mono: Vec::new(),
            skip,
            source_frames: 0,
            emitted: 0,
            bad_packets: 0,
            nonfinite: 0,
            stopped_by: None,
            eof: false,
            done: false,
        })
    }

    /// The file's header information.
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// The rate of the samples this decoder yields (Hz).
    pub fn output_rate_hz(&self) -> u32 {
        self.output_rate_hz
    }

    /// Expected total output length (samples), when the container states its length.
    pub fn expected_len(&self) -> Option<u64> {
        self.info
            .frames
            .map(|f| expected_len(f, self.info.sample_rate_hz, self.output_rate_hz))
    }

    /// Packets the codec rejected and that were skipped so far.
    pub fn bad_packets(&self) -> u64 {
        self.bad_packets
    }

    /// Non-finite samples replaced by 0 so far.
    pub fn nonfinite_samples(&self) -> u64 {
        self.nonfinite
    }

    /// Audio decoded so far (s of the file).
    pub fn decoded_s(&self) -> f64 {
        self.source_frames as f64 / self.info.sample_rate_hz as f64
    }

    /// The damage met, once the stream has ended ([`next_chunk`](Self::next_chunk) returned
    /// `Ok(false)`): a read or container error that stopped decoding, packets the codec
    /// rejected, a stream shorter than its header states. `None` for an intact file (and
    /// before the end).
    pub fn damage(&self) -> Option<InputError> {
        if !self.done {
            return None;
        }
        let mut reasons: Vec<String> = self.stopped_by.iter().cloned().collect();
        if self.bad_packets > 0 {
            reasons.push(format!(
                "{} undecodable packet(s) skipped",
                self.bad_packets
            ));
        }
        if self.info.frames.is_some_and(|f| self.source_frames < f) && self.stopped_by.is_none() {
            reasons.push("it holds less audio than its header states".into());
        }
        if reasons.is_empty() {
            return None;
        }
        Some(self.input_error(reasons.join("; ")))
    }

    /// An [`InputError`] for this file at the point decoded so far.
    pub fn input_error(&self, reason: String) -> InputError {
        InputError {
            path: self.path.clone(),
            decoded_s: self.decoded_s(),
            stated_s: self.info.duration_s,
            reason,
        }
    }

    /// Clear `out` and fill it with the next mono samples. Returns `Ok(false)` (with `out`
    /// empty) at the end of the stream; every `Ok(true)` chunk is non-empty.
    pub fn next_chunk(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        out.clear();
        while out.is_empty() {
            if self.done {
                return Ok(false);
            }
            if self.eof {
                self.finish(out)?;
                continue;
            }
            if !self.decode_packet()? {
                self.eof = true;
                continue;
            }
            match &mut self.resampler {
                None => out.extend_from_slice(&self.mono),
                Some(rs) => {
                    rs.process(&self.mono, out);
                    if self.skip > 0 {
                        let k = self.skip.min(out.len());
                        out.drain(..k);
                        self.skip -= k;
                    }
                }
            }
            self.emitted += out.len() as u64;
        }
        Ok(true)
    }

    /// At end of input: flush the resampler tail, cut the output to the exact expected
    /// length, report damage.
    fn finish(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.done = true;
        if self.source_frames == 0 {
            return Err(audio_err(&self.path, "no audio could be decoded"));
        }
        if let Some(rs) = &mut self.resampler {
            rs.flush(out);
            let k = self.skip.min(out.len());
            out.drain(..k);
            self.skip -= k;
            let want = expected_len(
                self.source_frames,
                self.info.sample_rate_hz,
                self.output_rate_hz,
            );
            let room = want.saturating_sub(self.emitted) as usize;
            out.truncate(room);
            self.emitted += out.len() as u64;
        }
        Ok(())
    }

    /// Decode the next packet of our track into `self.mono`. `Ok(false)` at end of input
    /// (including an early end of a truncated file).
    fn decode_packet(&mut self) -> Result<bool> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(SymError::IoError(e)) => {
                    // An end of file once the stated length is decoded is just the end.
                    let complete = self.info.frames.is_some_and(|f| self.source_frames >= f);
                    if !(complete && e.kind() == std::io::ErrorKind::UnexpectedEof) {
                        self.stopped_by = Some(format!("read error: {e}"));
                    }
                    return Ok(false);
                }
                Err(SymError::ResetRequired) => {
                    self.stopped_by = Some("the stream layout changes mid-file".into());
                    return Ok(false);
                }
                Err(e) => {
                    // A demuxer error may not advance the stream, so retrying could loop;
                    // treat it as the end of the usable audio.
                    if self.source_frames > 0 {
                        self.stopped_by = Some(format!("container error: {e}"));
                        return Ok(false);
                    }
                    return Err(audio_err(
                        &self.path,
                        format!("cannot read the stream ({e})"),
                    ));
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    self.bad_packets += 1;
                    continue;
                }
                Err(SymError::ResetRequired) => {
                    self.decoder.reset();
                    self.bad_packets += 1;
                    continue;
                }
                Err(e) => return Err(audio_err(&self.path, format!("decoder failed ({e})"))),
            };
            let channels = buf.spec().channels().count();
            let frames = buf.frames();
            if channels == 0 || frames == 0 {
                continue;
            }
            if buf.spec().rate() != self.info.sample_rate_hz {
                return Err(audio_err(
                    &self.path,
                    format!(
                        "sample rate changes mid-stream ({} -> {} Hz)",
                        self.info.sample_rate_hz,
                        buf.spec().rate()
                    ),
                ));
            }
            buf.copy_to_vec_interleaved::<f32>(&mut self.interleaved);
            self.nonfinite += downmix_into(&self.interleaved, channels, &mut self.mono);
            self.source_frames += frames as u64;
            return Ok(true);
        }
    }
}

/// Mean over channels into `mono` (cleared first); non-finite samples count as 0. Returns how
/// many non-finite samples were seen.
fn downmix_into(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) -> u64 {
    mono.clear();
    let mut bad = 0u64;
    let scale = 1.0 / channels as f32;
    for frame in interleaved.chunks_exact(channels) {
        let mut s = 0.0f32;
        for &x in frame {
            if x.is_finite() {
                s += x;
            } else {
                bad += 1;
            }
        }
        mono.push(s * scale);
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_means_and_scrubs() {
        let mut m = Vec::new();
        let bad = downmix_into(&[1.0, 3.0, f32::NAN, 2.0, -1.0, 1.0], 2, &mut m);
        assert_eq!(m, vec![2.0, 1.0, 0.0]);
        assert_eq!(bad, 1);
    }

    #[test]
    fn rate_bounds() {
        let p = Path::new("x.wav");
        assert!(check_rate(p, 0).is_err());
        assert!(check_rate(p, 3_999).is_err());
        assert!(check_rate(p, 8_000).is_ok());
        assert!(check_rate(p, 768_001).is_err());
    }
}
