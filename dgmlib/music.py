"""Bach chorales as binary piano rolls, from the corpus ``music21`` ships (offline).

The JSB Chorales set of Boulanger-Lewandowski et al. (2012) was made from these
chorales. Here each four-part chorale in ``music21.corpus.getComposer("bach")`` (the
``.mxl`` files) is parsed once and turned into a piano roll: one frame per quarter note
(``frame=1.0``; 0.5 for eighth notes), a pitch on in a frame if a note of that pitch
sounds at the frame's start, MIDI pitches ``low..high`` (default 36-84, C2-C6, 49
units; notes outside are dropped and counted), **not transposed** (each chorale in its
own key, as in JSB Chorales). The split is by piece and fixed: the i-th file in sorted
order goes to ``valid`` if i % 5 == 3, ``test`` if i % 5 == 4, else ``train`` (60/20/20,
as JSB's 229/76/77), so a piece never changes split whatever ``max_pieces`` is.

Parsing costs about 0.15 s of CPU per chorale; the rolls are cached as ``.npz`` under
:func:`dgmlib.data.cache_dir`, keyed by the arguments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["Chorales", "chorale_paths", "load_chorales", "piano_roll"]

SPLITS = ("train", "valid", "test")


@dataclass
class Chorales:
    """Piano rolls (T, D) float tensors per split, and how they were made."""

    train: list[Tensor]
    valid: list[Tensor]
    test: list[Tensor]
    low: int
    high: int
    frame: float
    names: dict[str, list[str]] = field(default_factory=dict)
    n_dropped_notes: int = 0
    parse_seconds: float = 0.0  # CPU seconds spent parsing (0 when cached)

    @property
    def n_pitches(self) -> int:
        return self.high - self.low + 1


def _corpus():
    """music21's corpus module, or a clear error saying how to install it."""
    try:
        from music21 import corpus
    except ImportError as err:
        raise ImportError(
            "dgmlib.music reads the Bach chorales from music21's bundled corpus, and "
            "music21 is not installed: pip install 'dgmlib[music]' (or music21)"
        ) from err
    return corpus


def chorale_paths() -> list[Path]:
    """The sorted ``.mxl`` files of music21's Bach corpus."""
    return sorted(p for p in _corpus().getComposer("bach") if p.suffix == ".mxl")


def _split_of(i: int) -> str:
    return {3: "valid", 4: "test"}.get(i % 5, "train")


def piano_roll(score, *, low: int, high: int, frame: float) -> tuple[np.ndarray, int]:
    """A music21 score -> (T, high - low + 1) uint8 roll and the number of dropped
    notes (outside low..high). Frame t covers [t frame, (t + 1) frame) quarter notes;
    a pitch is on if a note sounds at t frame."""
    notes = []
    for n in score.flatten().notes:
        start, end = float(n.offset), float(n.offset + n.quarterLength)
        notes += [(start, end, p.midi) for p in n.pitches]
    T = int(np.ceil(float(score.highestTime) / frame))
    roll = np.zeros((T, high - low + 1), dtype=np.uint8)
    dropped = 0
    for start, end, midi in notes:
        if not low <= midi <= high:
            dropped += 1
            continue
        t0, t1 = int(np.ceil(start / frame - 1e-9)), int(np.ceil(end / frame - 1e-9))
        roll[t0:t1, midi - low] = 1
    return roll, dropped


def load_chorales(
    *,
    max_pieces: int | None = None,
    low: int = 36,
    high: int = 84,
    frame: float = 1.0,
    cache: bool = True,
) -> Chorales:
    """Four-part Bach chorales as piano rolls, split by piece (module docstring).

    ``max_pieces`` parses only the first that many files in sorted order (the quick
    profile: parsing is slow); their split is the one they have in the full set.
    """
    if not (0 <= low <= high <= 127) or frame <= 0:
        raise ValueError(
            f"need 0 <= low <= high <= 127 and frame > 0; got {low}, {high}, {frame}"
        )
    from .data import cache_dir

    if max_pieces is not None and max_pieces < 5:
        raise ValueError(f"max_pieces must be >= 5 (one per split); got {max_pieces}")
    n = "all" if max_pieces is None else str(max_pieces)
    path = cache_dir() / f"bach_chorales_{low}_{high}_{frame:g}_{n}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            rolls = {n: z[n] for n in z.files if not n.startswith("_")}
            dropped = int(z["_dropped"])
        seconds = 0.0
    else:
        corpus = _corpus()
        t0 = time.process_time()
        rolls, dropped = {}, 0
        for i, p in enumerate(chorale_paths()[:max_pieces]):
            score = corpus.parse(str(p))
            if len(score.parts) != 4:
                continue  # keep the four-part chorales only
            roll, d = piano_roll(score, low=low, high=high, frame=frame)
            rolls[f"{_split_of(i)}:{i}:{p.stem}"] = roll
            dropped += d
        seconds = time.process_time() - t0
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, _dropped=np.array(dropped), **rolls)
            tmp.replace(path)
    out = {s: [] for s in SPLITS}
    names = {s: [] for s in SPLITS}
    for name in sorted(rolls, key=lambda n: int(n.split(":")[1])):
        split, _, stem = name.split(":")
        out[split].append(torch.from_numpy(rolls[name].astype(np.float32)))
        names[split].append(stem)
    return Chorales(
        **out,
        low=low,
        high=high,
        frame=frame,
        names=names,
        n_dropped_notes=dropped,
        parse_seconds=seconds,
    )
