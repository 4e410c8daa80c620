"""One bad input per function: a ScorefollowError with a one-line message, never a panic."""

from __future__ import annotations

import numpy as np
import pytest

import scorefollow as sf
from conftest import SCORES, piece

X = np.random.default_rng(0).random((10, 12))
Y = np.random.default_rng(1).random((8, 12))


def raises(match, fn, *args, **kwargs):
    with pytest.raises(sf.ScorefollowError, match=match) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    assert type(e.value).__module__ == "scorefollow"
    return msg


def test_the_error_class():
    assert issubclass(sf.ScorefollowError, Exception)
    assert sf.ScorefollowError is sf._scorefollow.ScorefollowError


def test_soft_dtw_family(tmp_path):
    raises("same number of values per frame", sf.soft_dtw, X, Y[:, :5])
    raises("invalid gamma '0'", sf.soft_dtw_grad, X, Y, 0.0)
    raises("not defined", sf.soft_dtw_divergence, X, Y, cost="precomputed")
    raises("pair 1", sf.soft_dtw_batch, [X, X], [Y, Y[:, :3]])
    bad = X.copy()
    bad[3, 4] = np.nan
    raises("not a finite number", sf.dtw, bad, Y)
    raises("invalid cost 'manhattan'", sf.soft_dtw, X, Y, cost="manhattan")
    raises("band", sf.soft_dtw, X, Y, band=-1)
    raises("too narrow|band", sf.soft_dtw, X, np.random.rand(40, 12), band=0)
    raises("not an array of numbers", sf.soft_dtw, "abc", Y)


def test_features(tmp_path):
    raises("cannot read", sf.load_audio, tmp_path / "missing.flac")
    (tmp_path / "noise.flac").write_bytes(np.random.default_rng(2).bytes(5000))
    raises("noise.flac", sf.chroma, tmp_path / "noise.flac")
    raises("without sample_rate", sf.chroma, np.zeros(1000, np.float32))
    raises("12", sf.cens, np.zeros((20, 5)), smooth_frames=3)
    raises("invalid n", sf.frame_times, -1)
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01")
    raises("bad.mid", sf.cens, tmp_path / "bad.mid")


def test_align():
    p = piece("bach_bwv66_6")
    msg = raises("loading the reference", sf.align, p["performance"], score=SCORES / "nope.mid")
    assert "nope.mid" in msg
    raises("--score SCORE.mid or --reference AUDIO", sf.align, p["performance"])


def test_spot_and_index(tmp_path):
    (tmp_path / "themes.toml").write_text("[[theme]]\nfile = 3\n")
    raises("themes.toml", sf.spot, tmp_path / "themes.toml", [piece("bach_bwv66_6")["performance"]])
    raises("no audio or MIDI file", sf.Index.build, [tmp_path])
    (tmp_path / "x.idx").write_bytes(b"not an index at all")
    raises("not a scorefollow spot index", sf.Index.load, tmp_path / "x.idx")
    idx = sf.Index.build([SCORES])
    raises("invalid top 0", idx.query, piece("bach_bwv66_6")["performance"], top=0)


def test_follower():
    p = piece("bach_bwv66_6")
    raises("invalid aligner 'dixon'", sf.Follower, score=p["score"], aligner="dixon")
    raises("loading the reference", sf.Follower, score=SCORES / "nope.mid")
    raises("invalid window_s", sf.Follower, score=p["score"], window_s=0.1)
    raises("invalid transpose '13'", sf.Follower, score=p["score"], transpose=13)
    raises("invalid written-pitch 'concert'", sf.Follower, score=p["score"], written_pitch="concert")
    f = sf.Follower(score=p["score"])
    f.push(np.zeros(4410, np.float32), 44100)
    raises("sample_rate changed from 44100 to 48000 Hz", f.push, np.zeros(4800, np.float32), 48000)
    raises("shape", f.push, np.zeros((2, 2, 2), np.float32), 44100)
    raises("invalid score_s", f.seek, float("nan"))
    raises("is not a speed", lambda: next(sf.follow_file(p["performance"], score=p["score"], speed=-1)))


def test_damaged_files_give_errors_never_a_panic(tmp_path):
    """Mutated MIDI and FLAC files either load or raise ScorefollowError; a panic would come
    out as pyo3's PanicException (a BaseException), which fails this test."""
    rng = np.random.default_rng(9)
    midi = piece("bach_bwv66_6")["score"].read_bytes()
    flac = piece("bach_bwv66_6")["performance"].read_bytes()[:60000]
    for k in range(12):
        m = bytearray(midi)
        for i in rng.integers(0, len(m), size=int(rng.integers(1, 8))):
            m[i] = int(rng.integers(0, 256))
        if k % 3 == 0:
            m = m[: int(rng.integers(14, len(m)))]
        (tmp_path / f"m{k}.mid").write_bytes(bytes(m))
        a = bytearray(flac)
        for i in rng.integers(0, 200 if k % 2 else len(a), size=int(rng.integers(1, 20))):
            a[i] = int(rng.integers(0, 256))
        (tmp_path / f"a{k}.flac").write_bytes(bytes(a))
        for call in (
            lambda: sf.Follower(score=tmp_path / f"m{k}.mid"),
            lambda: sf.chroma(tmp_path / f"m{k}.mid"),
            lambda: sf.chroma(tmp_path / f"a{k}.flac"),
            lambda: sf.align(tmp_path / f"a{k}.flac", score=piece("bach_bwv66_6")["score"]),
        ):
            try:
                call()
            except sf.ScorefollowError as e:
                assert "\n" not in str(e)
