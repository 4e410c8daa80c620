"""Chroma, CENS and audio loading: against `scorefollow chroma` and a numpy CENS."""

from __future__ import annotations

import numpy as np
import pytest

import scorefollow as sf
from conftest import PIECES, fmt, piece, read_csv, write_wav16

NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


@pytest.mark.parametrize("name", PIECES)
@pytest.mark.parametrize("kind", ["performance", "score"])
def test_chroma_same_numbers_as_the_cli(cli, tmp_path, name, kind):
    path = piece(name)[kind]
    cli("chroma", path, "--onset", "--out", tmp_path / "c.csv")
    rows = read_csv(tmp_path / "c.csv")
    C = sf.chroma(path, onset=True)
    assert C.shape == (len(rows), 24) and C.dtype == np.float32
    t = sf.frame_times(len(rows))
    for k, r in enumerate(rows):
        assert fmt(t[k]) == r["time_s"]
        got = [fmt(v, 5) for v in C[k]]
        want = [r[n] for n in NAMES] + [r["onset_" + n] for n in NAMES]
        assert got == want, f"frame {k}"
    assert np.array_equal(sf.chroma(path), C[:, :12])


def test_chroma_with_a_given_tuning_same_as_the_cli(cli, tmp_path):
    path = piece("bach_bwv66_6")["performance"]
    cli("chroma", path, "--tuning", "-20", "--out", tmp_path / "c.csv")
    rows = read_csv(tmp_path / "c.csv")
    C = sf.chroma(path, tuning=-20)
    assert [[fmt(v, 5) for v in c] for c in C] == [[r[n] for n in NAMES] for r in rows]


def test_chroma_of_samples_is_chroma_of_the_file(tmp_path):
    path = piece("bach_bwv66_6")["performance"]
    y, rate = sf.load_audio(path)
    assert y.dtype == np.float32 and rate == sf.ANALYSIS_RATE_HZ
    assert np.array_equal(sf.chroma(y, rate), sf.chroma(path))
    # At another rate: resampled inside exactly as the decoder resamples a file.
    y44, r44 = sf.load_audio(path, 44100)
    write_wav16(tmp_path / "x44.wav", y44, r44)
    z, rz = sf.load_audio(tmp_path / "x44.wav")
    assert rz == 44100
    assert np.array_equal(sf.chroma(z, rz), sf.chroma(tmp_path / "x44.wav"))
    # int16 PCM is scaled to [-1, 1)
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    assert np.allclose(sf.chroma(pcm, rate), sf.chroma(pcm.astype(np.float32) / 32768, rate))
    # (n, channels): the channels are mixed
    assert np.array_equal(sf.chroma(np.stack([y, y], axis=1), rate), sf.chroma(y, rate))


def reference_cens(C, smooth, down):
    """CENS as in Mueller's Chroma Toolbox, written plainly."""
    C = np.asarray(C, dtype=np.float64)
    n = len(C)
    q = np.zeros_like(C)
    for i, c in enumerate(C):
        if np.linalg.norm(c) < 0.5 or c.clip(0).sum() <= 0:
            continue
        p = c.clip(0) / c.clip(0).sum()
        q[i] = sum((p >= t).astype(float) for t in (0.05, 0.1, 0.2, 0.4))
    w = smooth + 1 if smooth % 2 == 0 else smooth
    win = np.sin(np.pi * np.arange(1, w + 1) / (w + 1)) ** 2
    win /= win.sum()
    h = (w - 1) // 2
    out = []
    for j in range(0, n, down):
        acc = np.zeros(12)
        for k in range(w):
            i = j + k - h
            if 0 <= i < n:
                acc += win[k] * q[i]
        nn = np.linalg.norm(acc)
        out.append(acc / nn if nn >= 1e-6 else np.full(12, 1 / np.sqrt(12)))
    return np.array(out)


@pytest.mark.parametrize("smooth,down", [(21, 5), (41, 10), (4, 1)])
def test_cens_of_chroma_matches_a_plain_implementation(smooth, down):
    C = sf.chroma(piece("bach_bwv66_6")["performance"])
    got = sf.cens(C, smooth_frames=smooth, downsample=down)
    want = reference_cens(C, smooth, down)
    assert got.shape == want.shape == (-(-len(C) // down), 12)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cens_of_a_file_and_of_its_samples():
    path = piece("mozart_k331")["performance"]
    a = sf.cens(path)
    y, rate = sf.load_audio(path)
    assert np.array_equal(sf.cens(y, rate), a)
    # 10 CENS frames a second over the 79 s recording, unit vectors
    assert abs(len(a) - 792) <= 1
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    m = sf.cens(piece("mozart_k331")["score"])
    assert m.shape[1] == 12 and len(m) > 100


def test_chroma_of_a_musicxml_score_same_as_the_cli(cli, tmp_path):
    xml = piece("bach_bwv66_6")["dir"] / "score.musicxml"
    if not xml.exists():
        pytest.skip("no bundled MusicXML score")
    cli("chroma", xml, "--out", tmp_path / "c.csv")
    rows = read_csv(tmp_path / "c.csv")
    assert [[fmt(v, 5) for v in c] for c in sf.chroma(xml)] == [[r[n] for n in NAMES] for r in rows]
