//! Writing audio: mono 32-bit float WAV (what `eval --room` plays its rooms' recordings from;
//! float keeps quiet signals exact, unlike 16-bit PCM).

use crate::error::{Error, Result};

/// Write `samples` (mono, `rate_hz`) as a 32-bit float WAV file.
pub fn write_wav_f32(path: &std::path::Path, rate_hz: u32, samples: &[f32]) -> Result<()> {
    let bytes = samples.len() * 4;
    let too_long = || {
        Error::invalid(
            "audio",
            path.display().to_string(),
            "too long for a WAV file".to_string(),
        )
    };
    let data_len = u32::try_from(bytes).map_err(|_| too_long())?;
    let riff_len = data_len.checked_add(36).ok_or_else(too_long)?;
    let mut out = Vec::with_capacity(44 + bytes);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate_hz.to_le_bytes());
    out.extend_from_slice(&(rate_hz * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for v in samples {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_decodes_to_the_same_samples() {
        let samples: Vec<f32> = (0..3000)
            .map(|k| ((k as f32) * 0.01).sin() * 1e-3)
            .collect();
        let path = std::env::temp_dir().join(format!("sf_wav_{}.wav", std::process::id()));
        write_wav_f32(&path, 22_050, &samples).expect("write");
        let info = crate::audio::decode::probe(&path).expect("probe");
        let back = crate::audio::decode::load_mono(&path, 22_050).expect("decode");
        let _ = std::fs::remove_file(&path);
        assert_eq!((info.sample_rate_hz, info.channels), (22_050, 1));
        assert_eq!(back, samples);
    }
}
