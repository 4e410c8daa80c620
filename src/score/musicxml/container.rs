//! Compressed MusicXML (`.mxl`): a ZIP archive whose `META-INF/container.xml` names the score
//! (the first `<rootfile>` whose media type is MusicXML, or has none).
//!
//! A minimal reader over the central directory: stored and deflated entries (the only methods
//! the MusicXML specification allows), CRC-32 checked, no ZIP64, no encryption. Inflation is
//! bounded by the size the directory declares, so a forged archive cannot claim memory.

use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// Largest uncompressed entry accepted (bytes): far above any real score.
const MAX_ENTRY_BYTES: usize = 256 << 20;

/// True when `bytes` start like a ZIP archive (a local file header, or an empty archive).
pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// One entry of the central directory.
struct Entry {
    name: String,
    method: u16,
    flags: u16,
    crc: u32,
    compressed: usize,
    uncompressed: usize,
    local_offset: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The central directory of `bytes`.
fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    // The end-of-central-directory record is the last 22 bytes plus up to 65535 of comment.
    let min = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (min..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
        .ok_or("not a ZIP archive (no end of central directory)")?;
    let count = u16_at(bytes, eocd + 10).ok_or("truncated ZIP directory")? as usize;
    let size = u32_at(bytes, eocd + 12).ok_or("truncated ZIP directory")? as usize;
    let offset = u32_at(bytes, eocd + 16).ok_or("truncated ZIP directory")? as usize;
    if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        return Err("ZIP64 archives are not supported".into());
    }
    if offset.checked_add(size).is_none_or(|end| end > eocd) {
        return Err("the ZIP central directory lies outside the file".into());
    }
    let mut out = Vec::with_capacity(count.min(4096));
    let mut at = offset;
    for _ in 0..count {
        let bad = || "truncated ZIP central directory".to_string();
        if bytes.get(at..at + 4) != Some(b"PK\x01\x02") {
            return Err(bad());
        }
        let flags = u16_at(bytes, at + 8).ok_or_else(bad)?;
        let method = u16_at(bytes, at + 10).ok_or_else(bad)?;
        let crc = u32_at(bytes, at + 16).ok_or_else(bad)?;
        let compressed = u32_at(bytes, at + 20).ok_or_else(bad)? as usize;
        let uncompressed = u32_at(bytes, at + 24).ok_or_else(bad)? as usize;
        let name_len = u16_at(bytes, at + 28).ok_or_else(bad)? as usize;
        let extra_len = u16_at(bytes, at + 30).ok_or_else(bad)? as usize;
        let comment_len = u16_at(bytes, at + 32).ok_or_else(bad)? as usize;
        let local_offset = u32_at(bytes, at + 42).ok_or_else(bad)? as usize;
        let name = bytes.get(at + 46..at + 46 + name_len).ok_or_else(bad)?;
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method,
            flags,
            crc,
            compressed,
            uncompressed,
            local_offset,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// The uncompressed bytes of `entry`.
fn extract(bytes: &[u8], entry: &Entry) -> Result<Vec<u8>, String> {
    let name = &entry.name;
    if entry.flags & 1 != 0 {
        return Err(format!("'{name}' is encrypted"));
    }
    if entry.uncompressed > MAX_ENTRY_BYTES {
        return Err(format!(
            "'{name}' would be {} bytes uncompressed",
            entry.uncompressed
        ));
    }
    let at = entry.local_offset;
    if bytes.get(at..at + 4) != Some(b"PK\x03\x04") {
        return Err(format!("'{name}': no local header at offset {at}"));
    }
    let name_len = u16_at(bytes, at + 26).ok_or("truncated local header")? as usize;
    let extra_len = u16_at(bytes, at + 28).ok_or("truncated local header")? as usize;
    let start = at + 30 + name_len + extra_len;
    let data = start
        .checked_add(entry.compressed)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| format!("'{name}' is cut short"))?;
    let out = match entry.method {
        0 => data.to_vec(),
        8 => decompress_to_vec_with_limit(data, entry.uncompressed)
            .map_err(|e| format!("'{name}' does not inflate: {:?}", e.status))?,
        m => {
            return Err(format!(
                "'{name}' uses compression method {m} (only 0 and 8)"
            ))
        }
    };
    if out.len() != entry.uncompressed {
        return Err(format!(
            "'{name}' holds {} bytes, its directory says {}",
            out.len(),
            entry.uncompressed
        ));
    }
    if crc32fast::hash(&out) != entry.crc {
        return Err(format!("'{name}' fails its CRC check"));
    }
    Ok(out)
}

/// The score inside an `.mxl` archive: (its name in the archive, its bytes). The rootfile is
/// the one `META-INF/container.xml` names; an archive without that file is read when it
/// holds exactly one `.xml`/`.musicxml` file outside `META-INF/` (with a warning).
pub(crate) fn rootfile(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let list = entries(bytes)?;
    let find = |name: &str| list.iter().find(|e| e.name == name);
    let Some(container) = find("META-INF/container.xml") else {
        let scores: Vec<&Entry> = list
            .iter()
            .filter(|e| {
                let n = e.name.to_ascii_lowercase();
                !n.starts_with("meta-inf/") && (n.ends_with(".xml") || n.ends_with(".musicxml"))
            })
            .collect();
        return match scores.as_slice() {
            [one] => {
                tracing::warn!(
                    "the .mxl archive has no META-INF/container.xml; reading its only score '{}'",
                    one.name
                );
                Ok((one.name.clone(), extract(bytes, one)?))
            }
            _ => Err("the archive has no META-INF/container.xml naming its rootfile".into()),
        };
    };
    let text = extract(bytes, container)?;
    let text =
        String::from_utf8(text).map_err(|_| "META-INF/container.xml is not UTF-8".to_string())?;
    let doc = super::dom::Dom::parse(text.trim_start_matches('\u{feff}'))
        .map_err(|(_, e)| format!("META-INF/container.xml: {e}"))?;
    let path = doc
        .root()
        .descendants()
        .filter(|n| n.is("rootfile"))
        .filter(|n| {
            n.attribute("media-type")
                .is_none_or(|m| m.contains("musicxml"))
        })
        .find_map(|n| n.attribute("full-path"))
        .ok_or("META-INF/container.xml names no MusicXML rootfile")?;
    let path = path.trim().trim_start_matches('/');
    let entry = find(path).ok_or_else(|| {
        format!("the rootfile '{path}' named in META-INF/container.xml is not in the archive")
    })?;
    Ok((path.to_string(), extract(bytes, entry)?))
}

/// Build a ZIP archive of `files` (name, bytes), each stored (`deflate` false) or deflated:
/// for tests and for writing `.mxl` fixtures.
#[cfg(test)]
pub(crate) fn write_zip(files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let (method, body) = if deflate {
            (8u16, miniz_oxide::deflate::compress_to_vec(data, 6))
        } else {
            (0u16, data.to_vec())
        };
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let header = |sig: &[u8], central_dir: bool| {
            let mut h = sig.to_vec();
            if central_dir {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&[0; 4]);
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(body.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central_dir {
                // Comment length, disk, internal and external attributes.
                h.extend_from_slice(&[0; 10]);
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        let local = header(b"PK\x03\x04", false);
        let dir = header(b"PK\x01\x02", true);
        out.extend_from_slice(&local);
        out.extend_from_slice(&body);
        central.extend_from_slice(&dir);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINER: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<container><rootfiles><rootfile full-path="score.xml" media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>"#;

    #[test]
    fn reads_the_named_rootfile_stored_and_deflated() {
        for deflate in [false, true] {
            let zip = write_zip(
                &[
                    ("META-INF/container.xml", CONTAINER),
                    ("other.xml", b"<x/>"),
                    ("score.xml", b"<score-partwise/>"),
                ],
                deflate,
            );
            assert!(is_zip(&zip));
            let (name, bytes) = rootfile(&zip).unwrap();
            assert_eq!(name, "score.xml");
            assert_eq!(bytes, b"<score-partwise/>");
        }
    }

    #[test]
    fn missing_and_broken_rootfiles_are_errors() {
        let zip = write_zip(&[("META-INF/container.xml", CONTAINER)], true);
        let e = rootfile(&zip).unwrap_err();
        assert!(
            e.contains("'score.xml'") && e.contains("not in the archive"),
            "{e}"
        );
        let mut zip = write_zip(
            &[
                ("META-INF/container.xml", CONTAINER),
                ("score.xml", b"<score-partwise>hello</score-partwise>"),
            ],
            false,
        );
        // Flip a byte of the stored score: the CRC catches it.
        let at = zip.windows(5).position(|w| w == b"hello").unwrap();
        zip[at] = b'j';
        assert!(rootfile(&zip).unwrap_err().contains("CRC"));
        let e = rootfile(&write_zip(&[("a.xml", b"<a/>"), ("b.xml", b"<b/>")], true)).unwrap_err();
        assert!(e.contains("container.xml"), "{e}");
        let (name, _) = rootfile(&write_zip(&[("only.musicxml", b"<a/>")], true)).unwrap();
        assert_eq!(name, "only.musicxml");
        assert!(rootfile(b"PK\x03\x04 garbage").is_err());
    }
}
