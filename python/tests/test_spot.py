"""Theme spotting and the matching index: the numbers of `scorefollow spot` and `index`."""

from __future__ import annotations

import re

import numpy as np
import pytest

import scorefollow as sf
from conftest import SCORES, fmt, piece, read_csv, write_wav16


def test_spot_same_hits_as_the_cli(cli, tmp_path):
    themes = SCORES / "mozart_k331" / "themes.toml"
    recs = [piece("mozart_k331")["performance"], piece("bach_bwv66_6")["performance"]]
    cli("spot", "--themes", themes, *recs, "--top", 4, "--out", tmp_path / "hits.csv")
    rows = read_csv(tmp_path / "hits.csv")
    hits = sf.spot(themes, recs, top=4)
    assert len(hits) == len(rows) > 0
    for h, r in zip(hits, rows):
        got = [h.theme_id, fmt(h.start_s, 3), fmt(h.end_s, 3), fmt(h.score, 5), str(h.rank),
               h.recording, fmt(h.tempo_scale, 3), str(h.transpose)]
        want = [r["theme_id"], r["start_s"], r["end_s"], r["score"], r["rank"], r["recording"],
                r["tempo_scale"], r["transpose"]]
        assert got == want
        assert h.cost == pytest.approx(1 - h.score, abs=1e-6)
    # the same themes named one by one, and as a dict
    files = {"opening": SCORES / "mozart_k331/themes/theme_01.mid",
             "second_phrase": SCORES / "mozart_k331/themes/theme_02.mid"}
    assert sf.spot(files, recs, top=4) == hits
    one = sf.spot(files["opening"], recs, top=4)
    assert [h.theme_id for h in one] == ["theme_01"] * len(one)
    assert [h.start_s for h in one] == [h.start_s for h in hits if h.theme_id == "opening"]
    cols = sf.columns(hits)
    assert cols["start_s"].dtype == np.float64 and list(cols["rank"]) == [h.rank for h in hits]


def parse_query_table(text):
    out = []
    for line in text.strip().splitlines()[1:]:
        rank, rec, a, b, score, tempo = line.split()
        out.append((int(rank), rec, a, b, score, tempo))
    return out


def test_index_same_file_and_hits_as_the_cli(cli, tmp_path):
    built = cli("index", "build", SCORES, "--out", tmp_path / "cli.idx").stdout
    idx = sf.Index.build([SCORES])
    idx.save(tmp_path / "py.idx")
    assert (tmp_path / "py.idx").read_bytes() == (tmp_path / "cli.idx").read_bytes()
    n = int(re.search(r"indexed (\d+) recordings, (\d+) shingles", built).group(1))
    assert len(idx.recordings) == n >= 6 and idx.n_shingles > 10  # 2 recordings, the scores
    y, rate = sf.load_audio(piece("mozart_k331")["performance"])
    clip = y[20 * rate : 35 * rate]
    write_wav16(tmp_path / "clip.wav", clip, rate)
    want = parse_query_table(cli("index", "query", tmp_path / "cli.idx", tmp_path / "clip.wav", "--top", 5).stdout)
    hits = sf.Index.load(tmp_path / "cli.idx").query(tmp_path / "clip.wav", top=5)
    got = [(h.rank, h.recording, fmt(h.start_s, 2), fmt(h.end_s, 2), fmt(h.score, 3), fmt(h.tempo_scale, 2))
           for h in hits]
    assert got == want
    assert hits[0].recording.endswith("mozart_k331/performance.flac")
    assert abs(hits[0].start_s - 20) < 1.5
    z, rz = sf.load_audio(tmp_path / "clip.wav")
    assert idx.query(z, rz, top=5) == hits
