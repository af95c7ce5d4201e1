"""Unit tests of dgmlib's core: config, train, exact, cache, plot, widgets."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from dgmlib import cache, config, exact, plot, train, widgets


# --- config ---------------------------------------------------------------------------
def test_profile_from_environment(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("DGMLIB_PROFILE", name)
        assert config.profile() == name
        assert (
            config.pick(quick=1, book=2, gpu=3)
            == {"quick": 1, "book": 2, "gpu": 3}[name]
        )
    monkeypatch.setenv("DGMLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick, book, gpu"):
        config.profile()
    monkeypatch.delenv("DGMLIB_PROFILE")
    assert config.profile() == ("gpu" if torch.cuda.is_available() else "book")


def test_device_choice(monkeypatch):
    monkeypatch.delenv("DGMLIB_DEVICE", raising=False)
    assert config.device().type in ("cuda", "mps", "cpu")
    monkeypatch.setenv("DGMLIB_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("DGMLIB_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            config.device()


def test_seed_everything_is_reproducible():
    g1 = config.seed_everything(7, device="cpu")
    a = torch.rand(3, generator=g1), torch.rand(3)
    g2 = config.seed_everything(7, device="cpu")
    b = torch.rand(3, generator=g2), torch.rand(3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        config.seed_everything(-1)
    assert "profile=" in config.describe()


# --- train ----------------------------------------------------------------------------
def test_fit_visits_every_example_once_per_epoch():
    seen = []
    data = torch.arange(103)
    hist = train.fit(
        lambda b: seen.append(b.clone()) or float(b.numel()),
        data,
        epochs=3,
        batch_size=10,
        generator=torch.Generator().manual_seed(0),
        quiet=True,
    )
    assert len(hist) == 3 * 11 and hist.epoch_ends == [11, 22, 33]
    for e in range(3):
        epoch = torch.cat(seen[e * 11 : (e + 1) * 11])
        assert torch.equal(epoch.sort().values, data)
    assert hist.epoch_mean("loss") == pytest.approx([103 / 11] * 3)
    assert not torch.equal(torch.cat(seen[:11]), data)  # shuffled


def _reversed_pairs(data, batch_size, **kw):
    """Broken variant of train.minibatches: y reversed against x, batched in order."""
    x, y = data
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y.flip(0)[start : start + batch_size]


@pytest.mark.parametrize("variant", ["correct", "reversed_pairs"])
def test_fit_tuples_keep_rows_together(variant, monkeypatch):
    # Deterministic: every (x, y) row that reaches step must still be a pair, and every
    # row must be seen once per epoch. The broken variant pairs x_i with y_{19-i}.
    if variant == "reversed_pairs":
        monkeypatch.setattr(train, "minibatches", _reversed_pairs)
    x, y = torch.arange(20.0), torch.arange(20) * 10
    seen = []

    def step(b):
        seen.append(torch.stack([b[0], b[1].double()], 1))
        return float((b[1] - 10 * b[0]).abs().sum())

    hist = train.fit(
        step,
        (x, y),
        epochs=2,
        batch_size=7,
        generator=torch.Generator().manual_seed(1),
        quiet=True,
    )
    rows = torch.cat(seen)
    assert len(hist["loss"]) == 6 and len(rows) == 40
    assert sorted(rows[:20, 0].tolist()) == x.tolist()  # each row once per epoch
    paired = bool((rows[:, 1] == 10 * rows[:, 0]).all()) and max(hist["loss"]) == 0
    assert paired == (variant == "correct"), rows
    if variant == "correct":
        # shuffled, not in order (rows kept together through the shuffle)
        assert rows[:20, 0].tolist() != x.tolist()
        with pytest.raises(ValueError, match="first dimension"):
            train.fit(lambda b: 0.0, (x, y[:5]), quiet=True)


def test_fit_nan_guard_names_the_step():
    values = iter([1.0, 2.0, float("nan")])
    with pytest.raises(train.NonFiniteError, match=r"step 2 \(epoch 0\)"):
        train.fit(lambda: {"loss": next(values)}, n_steps=5, quiet=True)
    with pytest.raises(train.NonFiniteError, match="inf"):
        train.fit(lambda b: float("inf"), torch.zeros(4), batch_size=2, quiet=True)


def test_fit_without_data_and_early_stop():
    hist = train.fit(
        lambda: {"a": 1.0, "b": 2.0},
        n_steps=10,
        quiet=True,
        callback=lambda i, row: i == 3,
    )
    assert hist["a"] == [1.0] * 4 and hist.last("b") == 2.0
    with pytest.raises(KeyError, match="recorded"):
        hist["c"]
    with pytest.raises(ValueError, match="n_steps"):
        train.fit(lambda: 0.0, quiet=True)


# --- exact ----------------------------------------------------------------------------
def test_all_states_are_the_binary_codes():
    x = exact.all_states(3, dtype=torch.int64)
    assert x.shape == (8, 3)
    assert torch.equal((x * torch.tensor([1, 2, 4])).sum(1), torch.arange(8))
    chunks = list(exact.iter_states(5, chunk_size=7))
    assert torch.equal(torch.cat(chunks), exact.all_states(5))
    with pytest.raises(ValueError, match="infeasible"):
        exact.all_states(40)
    with pytest.raises(ValueError, match="iter_states"):
        exact.all_states(26)


def test_log_partition_of_independent_units_matches_closed_form():
    # E(x) = -b.x  =>  Z = prod_i (1 + e^{b_i}); chunked enumeration must agree exactly.
    b = torch.linspace(-2, 3, 13, dtype=torch.float64)
    log_z = exact.log_partition_function(lambda x: -(x @ b), 13, chunk_size=100)
    assert float(log_z) == pytest.approx(
        float(torch.nn.functional.softplus(b).sum()), rel=1e-12
    )
    xs, p = exact.exact_distribution(lambda x: -(x @ b[:4]), 4)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose((p[:, None] * xs).sum(0), torch.sigmoid(b[:4]))  # marginals


def test_log_sum_exp_states_rejects_bad_shapes():
    with pytest.raises(ValueError, match="log_f must map"):
        exact.log_sum_exp_states(
            lambda x: x.T, 3
        )  # (d, n): states not on the first axis
    with pytest.raises(ValueError, match="log_f must map"):
        exact.log_sum_exp_states(lambda x: x.sum(), 3)  # a scalar


def test_log_sum_exp_states_batched_equals_one_sum_per_column():
    w = torch.randn(
        3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    batched = exact.log_sum_exp_states(lambda x: x @ w, 3, chunk_size=3)  # (4,)
    singles = torch.stack(
        [exact.log_sum_exp_states(lambda x, j=j: x @ w[:, j], 3) for j in range(4)]
    )
    assert torch.allclose(batched, singles, atol=1e-12)


# --- cache ----------------------------------------------------------------------------
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))


def _trainer(calls):
    def train_fn(m):
        calls.append(1)
        with torch.no_grad():
            m.w.add_(torch.tensor([1.0, 2.0, 3.0]))

    return train_fn


def test_train_or_load_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DGMLIB_CACHE", "on")
    calls = []
    m1 = cache.train_or_load("tiny", {"lr": 0.1}, build=Tiny, train=_trainer(calls))
    m2 = cache.train_or_load("tiny", {"lr": 0.1}, build=Tiny, train=_trainer(calls))
    assert len(calls) == 1 and torch.equal(m1.w, m2.w)
    cache.train_or_load("tiny", {"lr": 0.2}, build=Tiny, train=_trainer(calls))
    assert len(calls) == 2  # a new configuration trains afresh
    with pytest.raises(ValueError, match="JSON"):
        cache.train_or_load("tiny", {"lr": object()}, build=Tiny, train=_trainer(calls))


def test_corrupted_checkpoint_is_reported_and_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DGMLIB_CACHE", "on")
    calls = []
    cache.train_or_load("tiny", {"k": 1}, build=Tiny, train=_trainer(calls))
    path = cache.checkpoint_path("tiny", {"k": 1})
    path.write_bytes(path.read_bytes()[:40])  # truncate
    with pytest.warns(cache.CheckpointWarning, match="cannot be read"):
        m = cache.train_or_load("tiny", {"k": 1}, build=Tiny, train=_trainer(calls))
    assert len(calls) == 2 and torch.equal(m.w, torch.tensor([1.0, 2.0, 3.0]))
    assert path.with_suffix(".corrupt").exists()
    # a checkpoint holding a different configuration is not used either
    torch.save({"format": 1, "config": "{}", "state_dict": Tiny().state_dict()}, path)
    with pytest.warns(cache.CheckpointWarning, match="configuration differs"):
        cache.train_or_load("tiny", {"k": 1}, build=Tiny, train=_trainer(calls))
    assert len(calls) == 3


def test_cache_off_always_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DGMLIB_CACHE", "off")
    calls = []
    for _ in range(2):
        cache.train_or_load("tiny", {}, build=Tiny, train=_trainer(calls))
    assert len(calls) == 2 and not (tmp_path / "checkpoints").exists()


# --- plot and widgets -----------------------------------------------------------------
def test_image_grid_layout():
    imgs = torch.arange(5 * 4, dtype=torch.float64).reshape(5, 4)
    grid = plot.image_grid(imgs, (2, 2), ncol=3, pad=1, pad_value=-1)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)
    assert grid[0, 0] == 0 and grid[1, 1] == 3 and grid[0, 2] == -1 and grid[3, 0] == 12
    with pytest.raises(ValueError, match=r"\(N, 9\)"):
        plot.image_grid(imgs, (3, 3))


def test_density_2d_integrates_a_gaussian_to_one():
    matplotlib.use("Agg")
    normal = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    )
    _, dens, area = plot.density_2d(normal.log_prob, extent=(-6, 6, -6, 6), n=241)
    assert float(dens.sum()) * area == pytest.approx(1.0, abs=2e-3)
    matplotlib.pyplot.close("all")


def test_animation_is_self_contained_html():
    matplotlib.use("Agg")
    frames = [
        torch.rand(4, 9, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    html = plot.animate_images(frames, (3, 3), titles=["a", "b", "c"]).data
    assert "<img" in html and "data:image/png;base64" in html
    assert "http" not in html and "fa fa-" not in html  # offline: no CDN icons
    with pytest.raises(ValueError):
        plot.animate_images([], (3, 3))


def test_explore_draws_first_state_and_rejects_unknown_controls():
    matplotlib.use("Agg")
    calls = []

    def view(k: int = 3, t: float = 0.5):
        calls.append((k, t))
        fig, ax = matplotlib.pyplot.subplots()
        ax.plot([0, k], [0, t])
        return fig

    box = widgets.explore(view, k=(1, 8), t=(0.0, 1.0, 0.1))
    assert calls == [(3, 0.5)]
    k_slider = box.children[0].children[0]
    k_slider.value = 8
    assert calls[-1] == (8, 0.5)
    with pytest.raises(ValueError, match="has no argument"):
        widgets.explore(view, nope=(0, 1))
    with pytest.raises(ValueError, match="low < high"):
        widgets.slider(2, 1)
    with pytest.raises(ValueError, match="outside"):
        widgets.slider(0, 1, value=3)


def test_best_time_is_the_minimum_over_calls_and_rejects_zero_repeats():
    import time

    from dgmlib.config import best_time

    calls, sleeps = [], iter([0.2, 0.01, 0.1])

    def fn():
        calls.append(1)
        time.sleep(next(sleeps))

    t = best_time(fn, repeat=3)
    assert len(calls) == 3
    assert (
        0.01 <= t < 0.1
    )  # the shortest call, not the mean (0.1) or the first (0.2): a 90 ms margin
    with pytest.raises(ValueError, match="repeat >= 1"):
        best_time(fn, repeat=0)
