"""Type stubs of the native module (Rust, PyO3). Use the wrappers in ``scorefollow``."""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

ANALYSIS_RATE_HZ: int
FRAME_RATE_HZ: float
_RECORD_BYTES: int

class ScorefollowError(Exception): ...

_F64_2D = npt.NDArray[np.float64]
_F32_1D = npt.NDArray[np.float32]

def soft_dtw(
    x: _F64_2D,
    y: Optional[_F64_2D],
    gamma: float,
    cost: str,
    band: Optional[int],
    threads: int,
) -> float: ...
def soft_dtw_grad(
    x: _F64_2D,
    y: Optional[_F64_2D],
    gamma: float,
    cost: str,
    band: Optional[int],
    wrt: str,
) -> Tuple[float, _F64_2D]: ...
def soft_dtw_divergence(
    x: _F64_2D, y: _F64_2D, gamma: float, cost: str, band: Optional[int], grad: bool
) -> Tuple[float, Optional[_F64_2D]]: ...
def dtw(x: _F64_2D, y: Optional[_F64_2D], cost: str, band: Optional[int]) -> float: ...
def soft_dtw_batch(
    xs: List[_F64_2D],
    ys: Optional[List[_F64_2D]],
    gamma: float,
    cost: str,
    band: Optional[int],
    divergence: bool,
) -> npt.NDArray[np.float64]: ...
def load_audio(path: str, sample_rate: Optional[int]) -> Tuple[_F32_1D, int]: ...
def chroma(
    path: Optional[str],
    samples: Optional[_F32_1D],
    sample_rate: Optional[int],
    tuning: Optional[float],
    onset: bool,
) -> npt.NDArray[np.float32]: ...
def frame_times(n: int) -> npt.NDArray[np.float64]: ...
def cens(
    path: Optional[str],
    samples: Optional[_F32_1D],
    sample_rate: Optional[int],
    chroma: Optional[_F64_2D],
    smooth_frames: int,
    downsample: int,
    midi_mode: str,
) -> npt.NDArray[np.float32]: ...
def align(
    path: Optional[str],
    samples: Optional[_F32_1D],
    sample_rate: Optional[int],
    score: Optional[str],
    reference: Optional[str],
    full_end: bool,
    beats: bool,
) -> _F64_2D: ...
def spot(
    themes: List[Tuple[Optional[str], str]],
    themes_file: Optional[str],
    recordings: List[str],
    top: int,
    transpose: bool,
    tau: float,
    scales: int,
    min_scale: float,
    max_scale: float,
    method: str,
    midi_mode: str,
) -> List[Tuple[str, str, int, float, float, float, float, float, int]]: ...

class _AudioReader:
    def __init__(self, path: str) -> None: ...
    @property
    def sample_rate(self) -> int: ...
    def read(self) -> Optional[_F32_1D]: ...

class _Index:
    @staticmethod
    def build(
        paths: List[str],
        shingle_len: int,
        shingle_hop: int,
        pca: int,
        nprobe: int,
        exact_below: int,
        midi_mode: str,
    ) -> "_Index": ...
    @staticmethod
    def load(path: str) -> "_Index": ...
    def save(self, path: str) -> None: ...
    @property
    def recordings(self) -> List[str]: ...
    @property
    def n_shingles(self) -> int: ...
    def query(
        self,
        path: Optional[str],
        samples: Optional[_F32_1D],
        sample_rate: Optional[int],
        top: int,
        scales: int,
        midi_mode: str,
    ) -> List[Tuple[str, float, float, float, float]]: ...

class _Follower:
    def __init__(
        self,
        score: Optional[str],
        reference: Optional[str],
        aligner: str,
        window_s: float,
        start_s: float,
        tuning: Optional[str],
        transpose: str,
        relocate: str,
        structure: Optional[str],
        themes: Optional[str],
        written_pitch: str,
    ) -> None: ...
    def push(self, samples: _F32_1D, sample_rate: int) -> npt.NDArray[np.uint8]: ...
    def events(self) -> List[Dict[str, Any]]: ...
    def seek(self, score_s: float) -> None: ...
    @property
    def key_shift(self) -> Optional[int]: ...
    @property
    def frames(self) -> int: ...
    @property
    def reference_duration_s(self) -> float: ...
    @property
    def is_score(self) -> bool: ...
