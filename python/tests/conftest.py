"""Shared fixtures: the bundled pieces and the command line to compare against.

The command-line binary is found through $SCOREFOLLOW_BIN, then target/release/scorefollow of
this repository, then $PATH. Tests that compare with it are skipped when there is none, unless
$SCOREFOLLOW_REQUIRE_CLI=1 (CI), which makes a missing binary an error.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCORES = REPO / "scores"
PIECES = ["bach_bwv66_6", "mozart_k331"]


def piece(name: str) -> Dict[str, Path]:
    d = SCORES / name
    return {"dir": d, "score": d / "score.mid", "performance": d / "performance.flac"}


def _find_cli():
    env = os.environ.get("SCOREFOLLOW_BIN")
    if env:
        return env
    local = REPO / "target" / "release" / "scorefollow"
    if local.exists():
        return str(local)
    return shutil.which("scorefollow")


@pytest.fixture(scope="session")
def cli():
    """Run the command line; returns its stdout (stderr on failure in the assertion)."""
    exe = _find_cli()
    if exe is None:
        if os.environ.get("SCOREFOLLOW_REQUIRE_CLI") == "1":
            pytest.fail("SCOREFOLLOW_REQUIRE_CLI=1 but no scorefollow binary was found")
        pytest.skip("no scorefollow binary (cargo build --release, or set SCOREFOLLOW_BIN)")

    def run(*args: object) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [exe, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=600
        )
        assert p.returncode == 0, f"scorefollow {args} failed: {p.stderr}"
        return p

    return run


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt(x: float, decimals: int = 4) -> str:
    """A number as the command line writes it ({:.N} in Rust; empty for NaN)."""
    x = float(x)
    return f"{x:.{decimals}f}" if np.isfinite(x) else ""


def write_wav16(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono 16-bit PCM WAV (the stdlib writer: no extra dependency)."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
