#!/usr/bin/env python3
"""Follow a bundled piece from Python, notebook style.

    python python/examples/follow_bundled.py [mozart_k331 | bach_bwv66_6] [--plot trace.png]

Follows the piece's recorded performance as if it were live (4096-sample chunks), scores the
positions against the piece's ground truth (gt.csv: the true score time of every note onset),
plots the trace with matplotlib if it is installed, and runs pymatchmaker's Arzt follower on
the same file for comparison when pymatchmaker is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import time
from pathlib import Path

import numpy as np

import scorefollow as sf

SCORES = Path(__file__).resolve().parents[2] / "scores"


def causal_errors_ms(perf_t, score_t, truth):
    """|reported - true| score time (ms) at each true onset, using the last position reported
    at or before the onset's performance time (what a live listener had then)."""
    idx = np.searchsorted(perf_t, truth[:, 0], side="right") - 1
    ok = idx >= 0
    return 1e3 * np.abs(score_t[idx[ok]] - truth[ok, 1])


def summary(name, err_ms, seconds, audio_s):
    within = " ".join(f"{100 * np.mean(err_ms <= t):5.1f}" for t in (50, 100, 300, 1000))
    print(f"{name:24s} {within}   {seconds:8.3f} s ({audio_s / seconds:6.0f}x real time)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("piece", nargs="?", default="mozart_k331", choices=["mozart_k331", "bach_bwv66_6"])
    ap.add_argument("--plot", default=None, help="write the trace to this PNG (needs matplotlib)")
    ap.add_argument("--no-matchmaker", action="store_true")
    a = ap.parse_args()

    d = SCORES / a.piece
    perf, score = d / "performance.flac", d / "score.mid"
    with open(d / "gt.csv") as f:
        truth = np.array([[float(r["perf_time_s"]), float(r["score_time_s"])] for r in csv.DictReader(f)])

    # scorefollow: a Follower fed chunk by chunk, as from a sound card.
    samples, rate = sf.load_audio(perf)
    audio_s = len(samples) / rate
    follower = sf.Follower(score=score)
    t0 = time.perf_counter()
    chunks = [follower.push(samples[i : i + 4096], rate) for i in range(0, len(samples), 4096)]
    elapsed = time.perf_counter() - t0
    pos = np.concatenate(chunks)
    print(f"{a.piece}: {len(pos)} positions; events: {follower.events()}")
    print(f"{'within ms (% of onsets)':24s}    50   100   300  1000")
    summary("scorefollow", causal_errors_ms(pos["perf_time_s"], pos["score_time_s"], truth), elapsed, audio_s)

    traces = {"scorefollow": (pos["perf_time_s"], pos["score_time_s"])}
    if not a.no_matchmaker:
        try:
            from matchmaker import Matchmaker
        except ImportError:
            print("pymatchmaker is not installed: no comparison")
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                mm = Matchmaker(score_file=str(score), performance_file=str(perf),
                                input_type="audio", method="arzt")
                t0 = time.perf_counter()
                beats = np.array(list(mm.run(verbose=False)), dtype=float)
                mm_s = time.perf_counter() - t0
            # its positions are partitura beats (the time signature's unit), one per frame of
            # its own rate: to quarter notes through the score part, then to seconds through
            # scorefollow's (quarter-note beat, score time) pairs
            part = mm.score_part
            quarters = np.asarray(part.quarter_map(part.inv_beat_map(beats)), dtype=float)
            order = np.argsort(pos["beat"], kind="stable")
            hop_s = mm.hop_length / mm.sample_rate
            mm_perf = (np.arange(len(beats)) + 1) * hop_s
            mm_score = np.interp(quarters, pos["beat"][order], pos["score_time_s"][order])
            summary("pymatchmaker (arzt)", causal_errors_ms(mm_perf, mm_score, truth), mm_s, audio_s)
            traces["pymatchmaker arzt"] = (mm_perf, mm_score)

    if a.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot")
            return
        fig, ax = plt.subplots(figsize=(9, 6))
        ax.plot(truth[:, 0], truth[:, 1], "k.", ms=4, label="ground truth (onsets)")
        for name, (x, yv) in traces.items():
            ax.plot(x, yv, lw=1, label=name)
        ax.set_xlabel("performance time (s)")
        ax.set_ylabel("score time (s)")
        ax.set_title(f"Following {a.piece} live from a recording")
        ax.legend()
        fig.savefig(a.plot, dpi=120, bbox_inches="tight")
        print(f"wrote {a.plot}")


if __name__ == "__main__":
    main()
