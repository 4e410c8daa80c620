"""Offline alignment: the numbers of `scorefollow align --out`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import scorefollow as sf
from conftest import PIECES, fmt, piece, read_csv, write_wav16


def assert_same_as_csv(A, rows):
    assert A.shape == (len(rows), 4)
    for k, r in enumerate(rows):
        got = [fmt(A[k, 0]), fmt(A[k, 1]), fmt(A[k, 2]), "" if np.isnan(A[k, 3]) else str(int(A[k, 3]))]
        assert got == [r["perf_time_s"], r["score_time_s"], r["beat"], r["bar"]], f"row {k}"


@pytest.mark.parametrize("name", PIECES)
def test_align_against_the_score_same_as_the_cli(cli, tmp_path, name):
    p = piece(name)
    cli("align", p["performance"], "--score", p["score"], "--out", tmp_path / "a.csv", "--quiet")
    rows = read_csv(tmp_path / "a.csv")
    A = sf.align(p["performance"], score=p["score"], beats=True)
    assert_same_as_csv(A, rows)
    two = sf.align(p["performance"], score=p["score"])
    assert two.shape == (len(rows), 2) and np.array_equal(two, A[:, :2])
    # the samples instead of the file
    y, rate = sf.load_audio(p["performance"])
    assert np.array_equal(sf.align(y, score=p["score"], sample_rate=rate), two)


def test_align_against_the_printed_score_same_as_the_cli(cli, tmp_path):
    # A MusicXML score is aligned twice, the second time rendered at the tempo the first pass
    # found (its marks are not the performer's); the Python binding skipped the second pass
    # and ended up to 20.8 s away from the command line on this chorale.
    p = piece("bach_bwv66_6")
    score = p["dir"] / "score.musicxml"
    cli("align", p["performance"], "--score", score, "--out", tmp_path / "a.csv", "--quiet")
    rows = read_csv(tmp_path / "a.csv")
    A = sf.align(p["performance"], score=score)
    assert A.shape == (len(rows), 2)
    for k, r in enumerate(rows):
        assert [fmt(A[k, 0]), fmt(A[k, 1])] == [r["perf_time_s"], r["score_time_s"]], f"row {k}"


def test_align_against_a_recording_and_full_end_same_as_the_cli(cli, tmp_path):
    # The Bach performance against the rendering of its own score as the reference recording
    # would need a WAV writer in the CLI; the Mozart performance against itself exercises the
    # recording settings (log compression 10000, the audio cost weights) all the same.
    p = piece("mozart_k331")
    cli("align", p["performance"], "--reference", p["performance"], "--full-end", "--quiet",
        "--out", tmp_path / "a.csv")
    rows = read_csv(tmp_path / "a.csv")
    A = sf.align(p["performance"], reference=p["performance"], full_end=True, beats=True)
    assert_same_as_csv(A, rows)
    assert np.all(np.isnan(A[:, 2]))
    # against itself the path is the diagonal, within a frame
    assert np.abs(A[:, 1] - A[:, 0]).max() < 0.05


def test_align_warns_of_a_false_open_end_as_the_cli(cli, tmp_path):
    # The chorale's first 15 s, then 15 s of silence: the open end stops where the music does,
    # and the silent last 10 s move through none of the 14 s of the reference left.
    p = piece("bach_bwv66_6")
    y, rate = sf.load_audio(p["performance"])
    stops = np.concatenate([y[: 15 * rate], np.zeros(15 * rate, dtype=np.float32)])
    wav = tmp_path / "stops.wav"
    write_wav16(wav, stops, rate)
    with pytest.warns(UserWarning, match="align again with --full-end") as caught:
        A = sf.align(wav, score=p["score"])
    (message,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert message.startswith("the alignment ends at ")
    assert A[-1, 1] < 15.0
    run = cli("align", wav, "--score", p["score"], "--out", tmp_path / "a.csv")
    assert message in run.stderr
    # The whole performance ends where the score does: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sf.align(p["performance"], score=p["score"])
