#!/usr/bin/env python3
"""How fast scorefollow is from Python, next to the command line and the Python peers.

    python python/examples/benchmark.py [--cli target/release/scorefollow] [--reps 7]

1. Following the bundled Mozart performance in 4096-sample chunks, timed from the first push
   to the last result (the Follower is built before the clock starts), against the follow time
   `scorefollow follow --speed max` reports for the same file; the two alternate, `--reps`
   times each, in one run.
2. The same against pymatchmaker's Arzt follower (when installed), in this process: its frame
   loop fed as fast as possible, timed the same way (the score synthesis before the clock).
3. soft-DTW value + expected alignment E (N x M numpy array) at N = M = 1024, 12 dimensions,
   squared Euclidean, gamma 1, against the Cython `soft-dtw` package and tslearn (when
   installed): median of `--reps` runs each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np

import scorefollow as sf

REPO = Path(__file__).resolve().parents[2]
PERF = REPO / "scores" / "mozart_k331" / "performance.flac"
SCORE = REPO / "scores" / "mozart_k331" / "score.mid"


def follow_python(y, rate, chunk=4096):
    f = sf.Follower(score=SCORE)
    t0 = time.perf_counter()
    n = 0
    for s in range(0, len(y), chunk):
        n += len(f.push(y[s : s + chunk], rate))
    return time.perf_counter() - t0, n


def follow_cli(exe):
    p = subprocess.run(
        [exe, "follow", "--replay", str(PERF), "--score", str(SCORE), "--speed", "max",
         "--print-every", "0"],
        capture_output=True, text=True, check=True,
    )
    m = re.search(r"followed ([\d.]+) s of audio in ([\d.]+) s", p.stderr)
    return float(m.group(2))


def follow_matchmaker(peers_dir):
    """pymatchmaker's Arzt follower over the file as fast as possible; the score synthesis
    and feature setup happen before the clock starts. With the peers' runner
    (../shared/peers/matchmaker_online.py) its frame loop is driven synchronously, chunk by
    chunk as its AudioStream cuts them; without it, through `Matchmaker.run()`."""
    with contextlib.redirect_stdout(io.StringIO()):
        if peers_dir and (Path(peers_dir) / "matchmaker_online.py").exists():
            sys.path.insert(0, str(peers_dir))
            import matchmaker_online as M

            mm, y, sr, hop, _ = M.build_from_score(str(SCORE), str(PERF), "arzt")
            t0 = time.perf_counter()
            _, pos, _, _ = M.drive(mm.processor, mm.score_follower, y, sr, hop)
            return time.perf_counter() - t0, len(pos)
        from matchmaker import Matchmaker

        mm = Matchmaker(score_file=str(SCORE), performance_file=str(PERF), input_type="audio",
                        method="arzt")
        t0 = time.perf_counter()
        n = sum(1 for _ in mm.run(verbose=False))
        return time.perf_counter() - t0, n


def median_ms(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.environ.get("SCOREFOLLOW_BIN") or str(REPO / "target/release/scorefollow"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--skip-matchmaker", action="store_true")
    ap.add_argument("--peers-dir", default=str(REPO.parent / "shared" / "peers"),
                    help="folder of matchmaker_online.py (the development peers), if any")
    a = ap.parse_args()

    y, rate = sf.load_audio(PERF)
    audio_s = len(y) / rate
    print(f"1. following {PERF.name} ({audio_s:.1f} s) in 4096-sample chunks")
    follow_python(y, rate)  # warm the caches once
    py_t, cli_t = [], []
    for k in range(a.reps):
        if shutil.which(a.cli) or Path(a.cli).exists():
            cli_t.append(follow_cli(a.cli))
        t, n = follow_python(y, rate)
        py_t.append(t)
        print(f"   run {k + 1}: python {1e3 * t:6.1f} ms ({n} positions)"
              + (f", cli {1e3 * cli_t[-1]:6.1f} ms" if cli_t else ""))
    py_med = statistics.median(py_t)
    print(f"   python median {1e3 * py_med:.1f} ms ({audio_s / py_med:.0f}x real time)")
    if cli_t:
        cli_med = statistics.median(cli_t)
        print(f"   cli    median {1e3 * cli_med:.1f} ms; python / cli = {py_med / cli_med:.3f}")

    if not a.skip_matchmaker:
        try:
            mm_t, mm_n = follow_matchmaker(a.peers_dir)
            print(f"2. pymatchmaker arzt: {mm_t:.2f} s for {mm_n} positions; "
                  f"scorefollow (median above) is {mm_t / py_med:.0f}x faster")
        except ImportError:
            print("2. pymatchmaker not installed: skipped")

    print("3. soft-DTW value + E, N = M = 1024, d = 12, gamma 1")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((1024, 12)), rng.standard_normal((1024, 12))
    ours_two = median_ms(lambda: (sf.soft_dtw(X, Y, 1.0), sf.soft_dtw_grad(X, Y, 1.0)), a.reps)
    ours_one = median_ms(lambda: sf.soft_dtw_grad(X, Y, 1.0), a.reps)
    print(f"   scorefollow soft_dtw + soft_dtw_grad {ours_two:8.1f} ms")
    print(f"   scorefollow soft_dtw_grad (value, E) {ours_one:8.1f} ms")
    peers = []
    try:
        from sdtw import SoftDTW
        from sdtw.distance import SquaredEuclidean

        def cython():
            s = SoftDTW(SquaredEuclidean(X, Y), gamma=1.0)
            return s.compute(), s.grad()

        peers.append(("soft-dtw (Cython)", cython))
    except ImportError:
        print("   soft-dtw not installed: skipped")
    try:
        from tslearn.metrics import SoftDTW as TSoftDTW, SquaredEuclidean as TSq

        def tslearn():
            s = TSoftDTW(TSq(X, Y), gamma=1.0)
            return s.compute(), np.asarray(s.grad())

        tslearn()  # numba compiles on the first call
        peers.append(("tslearn", tslearn))
    except ImportError:
        print("   tslearn not installed: skipped")
    for name, fn in peers:
        ms = median_ms(fn, a.reps)
        v, E = fn()
        v2, E2 = sf.soft_dtw_grad(X, Y, 1.0)
        print(f"   {name:19s} value + grad  {ms:8.1f} ms: {ms / ours_two:.1f}x the two calls, "
              f"{ms / ours_one:.1f}x the one; |dv| {abs(v - v2):.1e}, max |dE| {np.abs(E - E2).max():.1e}")


if __name__ == "__main__":
    sys.exit(main())
