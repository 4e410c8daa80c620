"""scorefollow: score following, offline alignment, soft-DTW, chroma and theme spotting.

The Rust library behind the ``scorefollow`` command line, with numpy in and numpy out. Every
call releases the GIL while it works. Bad input raises :class:`ScorefollowError` with the same
one-line message as the command line.

Follow a recording (the shape pymatchmaker users know)::

    import scorefollow
    for pos in scorefollow.follow_file("performance.flac", score="score.mid"):
        print(pos.perf_time_s, pos.score_time_s, pos.bar, pos.beat)

Follow a live stream, chunk by chunk, at any sample rate::

    f = scorefollow.Follower(score="score.mid")
    positions = f.push(chunk, 44100)          # structured array, one row per 20 ms frame
    positions["score_time_s"], f.events()

Times are seconds: ``perf_time_s`` of the performance audio, ``score_time_s`` of the score
(MIDI) or of the reference recording. The analysis runs at 22 050 Hz, 50 frames a second.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from . import _scorefollow as _native
from ._scorefollow import ANALYSIS_RATE_HZ, FRAME_RATE_HZ, ScorefollowError

__version__ = "0.1.0"

__all__ = [
    "ANALYSIS_RATE_HZ",
    "FRAME_RATE_HZ",
    "POSITION_DTYPE",
    "Follower",
    "Index",
    "IndexHit",
    "Position",
    "ScorefollowError",
    "SpotHit",
    "align",
    "cens",
    "chroma",
    "columns",
    "dtw",
    "follow_file",
    "frame_times",
    "load_audio",
    "soft_dtw",
    "soft_dtw_batch",
    "soft_dtw_divergence",
    "soft_dtw_grad",
    "spot",
]

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = Any

#: One row of :meth:`Follower.push`'s result: a position per analysis frame (20 ms).
#:
#: - ``perf_time_s``: performance time (s) at which the frame's last sample arrived
#: - ``score_time_s``: position in the score (s of the score's own timeline, or of the reference recording)
#: - ``beat``: quarter-note beats from the start (scores; NaN against a recording)
#: - ``bar``: bar number, 1-based (scores; 0 against a recording)
#: - ``tempo``: score seconds per performance second
#: - ``confidence``: 0-1
#: - ``spread_s``: standard deviation of the estimate (s of score time)
#: - ``heard_score_s``: like ``score_time_s`` but never past a score onset not heard yet
#: - ``beat_in_bar``: beat within the bar, 1-based (scores; NaN against a recording)
#: - ``pass``: the pass through a repeat, 1 the first time (a MusicXML score's repeats or a
#:   structure file's sections)
#: - ``page``, ``system``: where the bar is in a MusicXML score's layout (0 without one)
#: - ``label``: the measure's printed label (UTF-8 bytes, e.g. ``b"4a"``; a MIDI score's bar)
POSITION_DTYPE = np.dtype(
    [
        ("perf_time_s", np.float64),
        ("score_time_s", np.float64),
        ("beat", np.float64),
        ("bar", np.int32),
        ("tempo", np.float32),
        ("confidence", np.float32),
        ("spread_s", np.float32),
        ("heard_score_s", np.float64),
        ("beat_in_bar", np.float64),
        ("pass", np.uint32),
        ("page", np.uint32),
        ("system", np.uint32),
        ("label", "S16"),
    ]
)
assert POSITION_DTYPE.itemsize == _native._RECORD_BYTES  # the Rust side writes this layout


class Position(NamedTuple):
    """One position reported by :func:`follow_file` (fields as :data:`POSITION_DTYPE`;
    ``pass`` is ``pass_`` here, ``pass`` being a Python keyword, and ``label`` a str)."""

    perf_time_s: float
    score_time_s: float
    beat: float
    bar: int
    tempo: float
    confidence: float
    spread_s: float
    heard_score_s: float
    beat_in_bar: float
    pass_: int
    page: int
    system: int
    label: str


# ----------------------------------------------------------------------------- helpers


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def _opt_path(x: Optional[PathLike]) -> Optional[str]:
    return None if x is None else os.fspath(x)


def _mono_f32(samples: ArrayLike) -> np.ndarray:
    """Samples as contiguous mono float32: integers scaled to [-1, 1), (n, channels) mixed."""
    a = np.asarray(samples)
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        mid = 0 if a.dtype.kind == "i" else (int(info.max) + 1) // 2
        a = (a.astype(np.float64) - mid) / float(int(info.max) + 1 - mid)
    elif a.dtype.kind != "f":
        raise ScorefollowError(
            f"samples of dtype {a.dtype}: give float or integer PCM samples"
        )
    if a.ndim == 2:
        a = a.mean(axis=1)  # (n_samples, n_channels), as soundfile reads them
    elif a.ndim != 1:
        raise ScorefollowError(
            f"samples of shape {a.shape}: give mono (n,) or (n, channels) samples"
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def _int(name: str, value: Any, minimum: int) -> int:
    """An integer argument, checked here so that a bad one is a ScorefollowError too."""
    try:
        v = int(value)
        ok = v == value and v >= minimum
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ScorefollowError(f"invalid {name} {value!r}: give a whole number >= {minimum}")
    return v


def _opt_int(name: str, value: Any, minimum: int) -> Optional[int]:
    return None if value is None else _int(name, value, minimum)


def _audio(source: Union[PathLike, ArrayLike], sample_rate: Optional[int]):
    """(path, samples, sample_rate) for the native calls."""
    rate = _opt_int("sample_rate", sample_rate, 1)
    if _is_path(source):
        return os.fspath(source), None, rate
    return None, _mono_f32(source), rate


def _matrix(a: ArrayLike, name: str) -> np.ndarray:
    """A float64 C-contiguous matrix; a 1-D array is a sequence of scalars (n, 1)."""
    try:
        m = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ScorefollowError(f"{name} is not an array of numbers: {e}") from None
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise ScorefollowError(
            f"{name} has shape {m.shape}: give a 2-D array (frames as rows)"
        )
    return np.ascontiguousarray(m)


# ----------------------------------------------------------------------------- soft-DTW


def soft_dtw(
    X: ArrayLike,
    Y: Optional[ArrayLike] = None,
    gamma: float = 1.0,
    *,
    cost: str = "sqeuclidean",
    band: Optional[int] = None,
    threads: int = 0,
) -> float:
    """Soft-DTW value between two sequences (Cuturi & Blondel 2017).

    X (N x d) and Y (M x d) hold one frame per row (a 1-D array is a sequence of scalars).
    ``cost`` is the frame cost: ``"sqeuclidean"`` (||x - y||^2) or ``"cosine"``
    (1 - cos(x, y)); with ``"precomputed"``, X is the N x M cost matrix and Y is None.
    ``gamma`` > 0 is the smoothing, in cost units (gamma -> 0 gives the DTW cost).
    ``band`` restricts alignments to a Sakoe-Chiba band of that half-width (frames of the
    longer sequence). Memory is O(min(N, M)): no cost matrix is stored. ``threads``: the
    value of two sequences is computed on that many threads (0, the default: one per core;
    stripes of rows pipelined), with the same result to the bit.
    """
    cost_m = _matrix(X, "X")
    y = None if Y is None else _matrix(Y, "Y")
    return _native.soft_dtw(
        cost_m, y, float(gamma), cost, _opt_int("band", band, 0), _int("threads", threads, 0)
    )


def soft_dtw_grad(
    X: ArrayLike,
    Y: Optional[ArrayLike] = None,
    gamma: float = 1.0,
    *,
    cost: str = "sqeuclidean",
    band: Optional[int] = None,
    wrt: str = "cost",
) -> Tuple[float, np.ndarray]:
    """Soft-DTW value and its gradient, as ``(value, G)``.

    ``wrt="cost"`` (default): G is the expected alignment E (N x M float64), the gradient
    with respect to the cost matrix, as the Cython ``soft-dtw`` package's ``SoftDTW.grad()``
    and tslearn return it. ``wrt="X"``: G is the gradient with respect to X (N x d).
    Arguments as :func:`soft_dtw`.
    """
    x = _matrix(X, "X")
    y = None if Y is None else _matrix(Y, "Y")
    return _native.soft_dtw_grad(x, y, float(gamma), cost, _opt_int("band", band, 0), wrt)


def soft_dtw_divergence(
    X: ArrayLike,
    Y: ArrayLike,
    gamma: float = 1.0,
    *,
    cost: str = "sqeuclidean",
    band: Optional[int] = None,
    grad: bool = False,
) -> Union[float, Tuple[float, np.ndarray]]:
    """Soft-DTW divergence D(X, Y) = SDTW(X, Y) - (SDTW(X, X) + SDTW(Y, Y)) / 2.

    Zero for X = Y and non-negative (Blondel, Mensch & Vert 2021). With ``grad=True`` returns
    ``(value, dD/dX)`` (N x d). Arguments as :func:`soft_dtw` (no ``"precomputed"`` cost).
    """
    value, g = _native.soft_dtw_divergence(
        _matrix(X, "X"), _matrix(Y, "Y"), float(gamma), cost, _opt_int("band", band, 0), bool(grad)
    )
    if g is None:
        return value
    return value, g


def soft_dtw_batch(
    Xs: Sequence[ArrayLike],
    Ys: Optional[Sequence[ArrayLike]] = None,
    gamma: float = 1.0,
    *,
    cost: str = "sqeuclidean",
    band: Optional[int] = None,
    divergence: bool = False,
) -> np.ndarray:
    """Soft-DTW values (or divergences) of the pairs ``(Xs[k], Ys[k])``, in parallel.

    Returns a float64 array with one value per pair. With ``cost="precomputed"``, ``Xs`` are
    cost matrices and ``Ys`` is None. An error names the pair at fault.
    """
    xs = [_matrix(x, f"Xs[{k}]") for k, x in enumerate(Xs)]
    ys = None if Ys is None else [_matrix(y, f"Ys[{k}]") for k, y in enumerate(Ys)]
    return _native.soft_dtw_batch(
        xs, ys, float(gamma), cost, _opt_int("band", band, 0), bool(divergence)
    )


def dtw(
    X: ArrayLike,
    Y: Optional[ArrayLike] = None,
    *,
    cost: str = "sqeuclidean",
    band: Optional[int] = None,
) -> float:
    """DTW cost (the minimum total cost of a monotone alignment); arguments as :func:`soft_dtw`."""
    y = None if Y is None else _matrix(Y, "Y")
    return _native.dtw(_matrix(X, "X"), y, cost, _opt_int("band", band, 0))


# ----------------------------------------------------------------------------- features


def load_audio(
    path: PathLike, sample_rate: Optional[int] = None
) -> Tuple[np.ndarray, int]:
    """Decode a file (WAV, FLAC, MP3, OGG) to mono float32.

    Returns ``(samples, rate)``: at the file's own rate, or resampled to ``sample_rate`` Hz.
    """
    return _native.load_audio(os.fspath(path), _opt_int("sample_rate", sample_rate, 1))


def chroma(
    source: Union[PathLike, ArrayLike],
    sample_rate: Optional[int] = None,
    *,
    tuning: Optional[float] = None,
    onset: bool = False,
) -> np.ndarray:
    """Chroma features, as ``scorefollow chroma`` writes them: a (frames, 12) float32 array.

    ``source`` is an audio file, a score (MIDI, MusicXML), or samples (mono, or
    (n, channels)) at ``sample_rate`` Hz. Columns are the pitch classes C, C#, ..., B; frames are 20 ms apart
    (:data:`FRAME_RATE_HZ`), frame k centred at ``frame_times(n)[k]``. Audio is analysed at
    its estimated tuning unless ``tuning`` (cents from A4 = 440 Hz) is given; a score is
    rendered as the follower's reference. ``onset=True`` adds the 12 onset-chroma columns.
    """
    path, samples, rate = _audio(source, sample_rate)
    t = None if tuning is None else float(tuning)
    return _native.chroma(path, samples, rate, t, bool(onset))


def frame_times(n: int) -> np.ndarray:
    """Audio time (s) of the centre of each of ``n`` chroma frames (``time_s`` of the CLI)."""
    return _native.frame_times(_int("n", n, 0))


def cens(
    source: Union[PathLike, ArrayLike],
    sample_rate: Optional[int] = None,
    *,
    smooth_frames: int = 21,
    downsample: int = 5,
    midi_mode: str = "template",
) -> np.ndarray:
    """CENS features (Mueller, Kurth & Clausen 2005): a (frames, 12) float32 array.

    ``source`` is an (n, 12) chroma array, or a file or samples (then chroma with the theme
    spotter's settings first: log compression 1; MIDI as note templates, ``midi_mode``
    ``"template"``, or rendered, ``"synth"``). Each frame is L1-normalised, quantised, smoothed
    over ``smooth_frames`` chroma frames (Hann) and every ``downsample``-th frame kept (the
    defaults give 10 frames a second), then L2-normalised.
    """
    a = None if _is_path(source) else np.asarray(source)
    if a is not None and a.ndim == 2 and sample_rate is None:  # chroma, not samples
        c = np.ascontiguousarray(a, dtype=np.float64)
        return _native.cens(
            None, None, None, c, _int("smooth_frames", smooth_frames, 1),
            _int("downsample", downsample, 1), midi_mode,
        )
    path, samples, rate = _audio(source, sample_rate)
    return _native.cens(
        path, samples, rate, None, _int("smooth_frames", smooth_frames, 1),
        _int("downsample", downsample, 1), midi_mode,
    )


# ----------------------------------------------------------------------------- alignment


def align(
    performance: Union[PathLike, ArrayLike],
    score: Optional[PathLike] = None,
    reference: Optional[PathLike] = None,
    *,
    sample_rate: Optional[int] = None,
    full_end: bool = False,
    beats: bool = False,
) -> np.ndarray:
    """Align a whole performance to a score or a reference recording, offline.

    The same computation as ``scorefollow align``: returns an (n, 2) float64 array of
    ``(perf_time_s, score_time_s)``, one row per performance frame (frame centres, 20 ms
    apart). ``performance`` is an audio file or samples at ``sample_rate`` Hz. Give the piece
    as ``score=`` (MIDI or MusicXML) or ``reference=`` (a recording, or a score file).
    ``full_end=True`` makes the performance reach the end of the reference. ``beats=True``
    adds the columns beat and bar (scores; NaN against a recording): (n, 4). When the open
    end looks false (the performance's last 10 s move through under a third as much of the
    reference, more than 5 s of it left), a ``UserWarning`` says so, with the text
    ``scorefollow align`` prints: align again with ``full_end=True`` if the performance plays
    on to the end.
    """
    path, samples, rate = _audio(performance, sample_rate)
    return _native.align(
        path, samples, rate, _opt_path(score), _opt_path(reference), bool(full_end), bool(beats)
    )


# ----------------------------------------------------------------------------- spotting


@dataclass(frozen=True)
class SpotHit:
    """An occurrence of a theme in a recording (a row of ``scorefollow spot --out``)."""

    theme_id: str
    recording: str
    rank: int  #: 1-based rank among this theme's hits over all recordings
    start_s: float  #: start of the occurrence (s of the recording)
    end_s: float  #: end (s)
    score: float  #: 1 - cost, higher is better
    cost: float  #: mean cosine distance along the match (0 = identical)
    tempo_scale: float  #: occurrence length / theme length
    transpose: int  #: semitones from the theme (with ``transpose=True``)


@dataclass(frozen=True)
class IndexHit:
    """Where a clip occurs in an indexed collection (a row of ``scorefollow index query``)."""

    rank: int
    recording: str
    start_s: float
    end_s: float
    score: float  #: mean shingle similarity, 1 = identical
    tempo_scale: float  #: occurrence length / clip length


def columns(hits: Sequence[Any]) -> Dict[str, np.ndarray]:
    """A list of :class:`SpotHit` or :class:`IndexHit` as a dict of numpy columns."""
    if not hits:
        return {}
    names = list(type(hits[0]).__dataclass_fields__)
    return {n: np.array([getattr(h, n) for h in hits]) for n in names}


def _is_themes_file(p: PathLike) -> bool:
    return os.fspath(p).lower().endswith((".toml", ".csv"))


def spot(
    themes: Union[PathLike, Sequence[PathLike], Mapping[str, PathLike]],
    recordings: Union[PathLike, Sequence[PathLike]],
    *,
    top: int = 10,
    transpose: bool = False,
    tau: float = 0.6,
    scales: int = 15,
    min_scale: float = 0.5,
    max_scale: float = 2.0,
    method: str = "dtw",
    midi_mode: str = "template",
) -> List[SpotHit]:
    """Find every occurrence of themes (MIDI or audio queries) in recordings or MIDI files.

    ``themes``: a query file, a list of them (ids are the file stems), a dict
    ``{id: file}``, or a themes file (``.toml`` with ``[[theme]]`` tables, or ``.csv`` with
    ``file[,id]`` columns). Options as ``scorefollow spot``: the ``top`` best hits per theme,
    costs up to ``tau``, ``scales`` tempo scalings from ``min_scale`` to ``max_scale``,
    ``method`` ``"dtw"`` or ``"diagonal"``, ``transpose=True`` to search all 12 keys.
    Returns the hits by theme, then rank.
    """
    pairs: List[Tuple[Optional[str], str]] = []
    themes_file: Optional[str] = None
    if isinstance(themes, Mapping):
        pairs = [(str(k), os.fspath(v)) for k, v in themes.items()]
    elif isinstance(themes, (str, os.PathLike)):
        if _is_themes_file(themes):
            themes_file = os.fspath(themes)
        else:
            pairs = [(None, os.fspath(themes))]
    else:
        pairs = [(None, os.fspath(p)) for p in themes]
    if isinstance(recordings, (str, os.PathLike)):
        recs = [os.fspath(recordings)]
    else:
        recs = [os.fspath(r) for r in recordings]
    rows = _native.spot(
        pairs, themes_file, recs, _int("top", top, 1), bool(transpose), float(tau),
        _int("scales", scales, 1),
        float(min_scale), float(max_scale), method, midi_mode,
    )
    return [SpotHit(*r) for r in rows]


class Index:
    """An audio-matching index over a collection (``scorefollow index``).

    Build with :meth:`Index.build`, save and :meth:`Index.load` (the files are those of the
    command line), search with :meth:`query`.
    """

    def __init__(self, native: Any):
        self._native = native

    @classmethod
    def build(
        cls,
        paths: Union[PathLike, Sequence[PathLike]],
        *,
        shingle_len: int = 20,
        shingle_hop: int = 2,
        pca: int = 32,
        nprobe: int = 24,
        exact_below: int = 20_000,
        midi_mode: str = "template",
    ) -> "Index":
        """Index every audio and MIDI file under the given folders (or the files given).

        Options as ``scorefollow index build``: shingles of ``shingle_len`` CENS frames (10
        a second) every ``shingle_hop`` frames, projected on ``pca`` dimensions (0 = none);
        ``nprobe`` lists searched per query shingle; exhaustive search below ``exact_below``
        shingles.
        """
        if isinstance(paths, (str, os.PathLike)):
            ps = [os.fspath(paths)]
        else:
            ps = [os.fspath(p) for p in paths]
        return cls(
            _native._Index.build(
                ps, _int("shingle_len", shingle_len, 1), _int("shingle_hop", shingle_hop, 1),
                _int("pca", pca, 0), _int("nprobe", nprobe, 1),
                _int("exact_below", exact_below, 0), midi_mode,
            )
        )

    @classmethod
    def load(cls, path: PathLike) -> "Index":
        """Read an index file (written by :meth:`save` or ``scorefollow index build``)."""
        return cls(_native._Index.load(os.fspath(path)))

    def save(self, path: PathLike) -> None:
        """Write the index to ``path``."""
        self._native.save(os.fspath(path))

    @property
    def recordings(self) -> List[str]:
        """The indexed files, as given at build time, in index order."""
        return self._native.recordings

    @property
    def n_shingles(self) -> int:
        """Number of shingles indexed."""
        return self._native.n_shingles

    def query(
        self,
        clip: Union[PathLike, ArrayLike],
        sample_rate: Optional[int] = None,
        *,
        top: int = 10,
        scales: int = 9,
        midi_mode: str = "template",
    ) -> List[IndexHit]:
        """Where ``clip`` (an audio or MIDI file, or samples at ``sample_rate`` Hz) occurs.

        Tries ``scales`` tempo scalings from 0.5 to 2; returns at most ``top`` hits, best
        first, no two overlapping by more than half.
        """
        path, samples, rate = _audio(clip, sample_rate)
        rows = self._native.query(
            path, samples, rate, _int("top", top, 1), _int("scales", scales, 1), midi_mode
        )
        return [IndexHit(i + 1, *r) for i, r in enumerate(rows)]

    def __repr__(self) -> str:
        return f"Index({len(self.recordings)} recordings, {self.n_shingles} shingles)"


# ----------------------------------------------------------------------------- following


class Follower:
    """A score follower: push audio as it comes, get the positions it has reached.

    Give the piece as ``score=`` (MIDI or MusicXML: beats and bars are reported) or
    ``reference=`` (a recording of the piece). Options as ``scorefollow follow``:

    - ``aligner``: ``"soft"`` (online soft-DTW, default) or ``"oltw"``
    - ``window_s``: how far ahead and behind the follower looks (s of the score, > 0.5)
    - ``start_s``: score time (s) to start from
    - ``tuning``: cents from A4 = 440 Hz, or ``"auto"`` to estimate and track it
    - ``transpose``: ``"auto"`` (detected in the first 12 s) or semitones -11..11
    - ``relocate``: ``"auto"``, ``"on"`` or ``"off"``: re-locate after skips and repeats
    - ``structure``: a structure file (the order sections are played in)
    - ``themes``: a themes file: occurrences are reported by :meth:`events`
    - ``written_pitch``: ``"auto"``, ``"sounding"`` or ``"written"``: the pitch a MusicXML
      score's transposing parts (a B-flat clarinet) are followed at; ``"auto"`` listens to
      both until those parts have played 2 s and keeps the one the performance matches

    Fed the same samples, it reports the same positions as ``scorefollow follow --out``,
    however the samples are cut into chunks.
    """

    def __init__(
        self,
        score: Optional[PathLike] = None,
        reference: Optional[PathLike] = None,
        *,
        aligner: str = "soft",
        window_s: float = 10.0,
        start_s: float = 0.0,
        tuning: Union[None, float, str] = None,
        transpose: Union[int, str] = "auto",
        relocate: str = "auto",
        structure: Optional[PathLike] = None,
        themes: Optional[PathLike] = None,
        written_pitch: str = "auto",
    ):
        self._native = _native._Follower(
            _opt_path(score),
            _opt_path(reference),
            aligner,
            float(window_s),
            float(start_s),
            None if tuning is None else str(tuning),
            str(transpose),
            relocate,
            _opt_path(structure),
            _opt_path(themes),
            written_pitch,
        )

    def push(self, samples: ArrayLike, sample_rate: int) -> np.ndarray:
        """Follow the next samples and return the positions of the frames they completed.

        ``samples``: mono (or (n, channels)) float or integer PCM at ``sample_rate`` Hz, the
        same rate for every push (resampled inside to 22 050 Hz). Returns a structured array
        of :data:`POSITION_DTYPE`, one row per 20 ms analysis frame completed (possibly
        none).
        """
        rate = _int("sample_rate", sample_rate, 1)
        return self._native.push(_mono_f32(samples), rate).view(POSITION_DTYPE)

    def events(self) -> List[Dict[str, Any]]:
        """What happened besides positions since the last call, oldest first.

        Each event is a dict with ``kind`` and ``perf_time_s`` (s of performance):

        - ``"relocated"``: the follower jumped after a skip or repeat, on the frame ending at
          ``perf_time_s``: ``from_score_s``, ``to_score_s``, ``suspect_since_s``, ``cost``,
          ``confidence``, ``from_key_shift``, ``key_shift``
        - ``"key"``: the transposition was detected: ``key_shift`` (semitones above the score)
        - ``"theme"``: a theme occurrence (with ``themes=``): ``theme_id``, ``start_s``,
          ``end_s`` (s of performance), ``score``
        - ``"nonfinite"``: ``samples`` NaN or infinite input samples were replaced by silence

        For ``"key"``, ``"theme"`` and ``"nonfinite"``, ``perf_time_s`` is the time of the last
        frame of the :meth:`push` that found it (within one chunk of the moment).
        """
        return self._native.events()

    def seek(self, score_s: float) -> None:
        """Restart following at score time ``score_s`` (s)."""
        self._native.seek(float(score_s))

    @property
    def key_shift(self) -> Optional[int]:
        """Semitones the performance is above the score (0-11); None while still detecting."""
        return self._native.key_shift

    @property
    def frames(self) -> int:
        """Analysis frames followed so far."""
        return self._native.frames

    @property
    def reference_duration_s(self) -> float:
        """Duration of the score or reference recording (s)."""
        return self._native.reference_duration_s

    @property
    def is_score(self) -> bool:
        """True against a score (beats and bars reported), False against a recording."""
        return self._native.is_score


def _parse_speed(speed: Union[str, float]) -> Optional[float]:
    if isinstance(speed, str) and speed.lower() == "max":
        return None
    try:
        s = float(speed)
    except (TypeError, ValueError):
        s = float("nan")
    if not (s > 0 and np.isfinite(s)):
        raise ScorefollowError(
            f"'{speed}' is not a speed: give a positive factor (1.0 = real time) or 'max'"
        )
    return s


def follow_file(
    path: PathLike,
    score: Optional[PathLike] = None,
    reference: Optional[PathLike] = None,
    *,
    speed: Union[str, float] = "max",
    chunk_size: int = 4096,
    **options: Any,
) -> Iterator[Position]:
    """Follow a recording as if it were live input; yields a :class:`Position` per frame.

    ``speed``: ``"max"`` (as fast as possible) or a factor of real time (1.0 = real time,
    the generator then waits for the audio's time to come). The file is decoded at its own
    rate and fed in chunks of ``chunk_size`` samples, as a sound card would deliver it.
    ``options`` are those of :class:`Follower`. The positions are those of
    ``scorefollow follow --replay path --out``.
    """
    factor = _parse_speed(speed)
    chunk_size = _int("chunk_size", chunk_size, 1)
    reader = _native._AudioReader(os.fspath(path))
    follower = Follower(score=score, reference=reference, **options)
    rate = reader.sample_rate
    pending = np.zeros(0, dtype=np.float32)
    fed = 0
    t0 = time.perf_counter()
    done = False
    while not done:
        while len(pending) < chunk_size:
            more = reader.read()
            if more is None:
                done = True
                break
            pending = np.concatenate((pending, more)) if len(pending) else more
        while len(pending) >= chunk_size or (done and len(pending)):
            chunk, pending = pending[:chunk_size], pending[chunk_size:]
            fed += len(chunk)
            if factor is not None:
                wait = t0 + fed / (rate * factor) - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            for row in follower.push(chunk, rate).tolist():
                yield Position(*row[:-1], row[-1].decode("utf-8", "replace"))
