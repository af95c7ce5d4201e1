"""Bach chorale piano rolls (dgmlib.music): the roll of a hand-made score, the fixed
split by piece, the cache."""

import pytest
import torch

music21 = pytest.importorskip("music21")

from dgmlib import music  # noqa: E402


def test_piano_roll_of_a_small_score():
    from music21 import note, stream

    s = stream.Score()
    part = stream.Part()
    for midi, ql in [(60, 1.0), (62, 0.5), (64, 0.5), (90, 1.0), (67, 2.0)]:
        part.append(note.Note(midi, quarterLength=ql))
    s.insert(0, part)
    roll, dropped = music.piano_roll(s, low=60, high=72, frame=1.0)
    assert dropped == 1  # MIDI 90 is above the range
    assert roll.shape == (5, 13)
    on = [set((r.nonzero()[0] + 60).tolist()) for r in roll]
    # frame 1 starts with 62 (64 starts mid-frame); frame 2 holds the rest; 67 twice
    assert on == [{60}, {62}, set(), {67}, {67}]


def test_load_chorales_split_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path))
    c = music.load_chorales(max_pieces=5)
    assert c.parse_seconds > 0
    stems = [p.stem for p in music.chorale_paths()[:5]]
    for split in music.SPLITS:
        want = [s for i, s in enumerate(stems) if music._split_of(i) == split]
        assert set(c.names[split]) <= set(want)
    assert c.names["valid"] == [stems[3]] and c.names["test"] == [stems[4]]
    for r in c.train + c.valid + c.test:
        assert r.shape[1] == c.n_pitches == 49 and set(r.unique().tolist()) <= {0, 1}
        assert 2 <= int(r.sum(1).max()) <= 4  # four voices, unisons merged
    again = music.load_chorales(max_pieces=5)
    assert again.parse_seconds == 0.0  # read from the cache
    assert all(torch.equal(a, b) for a, b in zip(c.train, again.train))


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="max_pieces must be >= 5"):
        music.load_chorales(max_pieces=3)
    with pytest.raises(ValueError, match="0 <= low <= high <= 127"):
        music.load_chorales(low=80, high=60)


def test_a_missing_music21_is_reported_with_the_install_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_music21(name, *args, **kwargs):
        if name.startswith("music21"):
            raise ImportError("No module named 'music21'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_music21)
    from dgmlib import music

    with pytest.raises(ImportError, match=r"pip install 'dgmlib\[music\]'"):
        music.chorale_paths()
