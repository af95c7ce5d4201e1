"""One likelihood table for every explicit model of the book (chapter 20), built from
the benchmark results (``benchmarks/results/*.json``), never typed by hand.

Each :class:`Entry` names a model, the data it was scored on, the *estimator* behind its
number (exact, an AIS estimate with its reverse-AIS bracket, a variational bound, an
importance-weighted bound) and the published number it stands beside; the number itself,
its bracket and its training budget are looked up in the result files by
(benchmark, what). A model whose benchmark has not been run gets a row that says so.

On a clone of the repository the results are read from ``benchmarks/results``; elsewhere
(Colab) :func:`results_dir` downloads the files the table needs from the repository
once, into the user cache, and says so if it cannot.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Entry",
    "ENTRIES",
    "likelihood_table",
    "load_results",
    "results_dir",
    "table_html",
]

REPO_RAW = (
    "https://raw.githubusercontent.com/dgm-executable/deep-generative-models/main/"
    "benchmarks/results/"
)
MNIST = "binarized MNIST (fixed binarization, 10,000 test images)"
DIGITS = "dequantized 8×8 digits (k + u on [0, 17)^64, held-out split)"


@dataclass(frozen=True)
class Entry:
    """One row of the likelihood table.

    ``value``, ``bracket`` and ``budget`` are ``(result file, benchmark, what)`` keys
    into the benchmark results (``None``: not applicable); ``published`` is the number
    from the literature with its citation and setting.
    """

    data: str
    model: str
    chapter: str
    size: str
    estimator: str
    value: tuple[str, str, str] | None
    published: str
    bracket: tuple[str, str, str] | None = None
    budget: tuple[str, str, str] | None = None


# A bracket wider than this (nats) means AIS has not mixed: the number is not quoted
# as a log-likelihood (the DBM benchmark's own "trusted" threshold).
TRUSTED_BRACKET = 2.0

_RBM = "rbm-quality-cpu.json"
_RECIPE = "rbm-recipe-cpu.json"
_CENTERED = "rbm-centered-cpu.json"
_FLOWS = "flows-cpu.json"
ENTRIES: tuple[Entry, ...] = (
    Entry(
        MNIST,
        "RBM, PCD-1, fit_rbm defaults",
        "ch-rbm",
        "784–500",
        "AIS log Z (14,501 β, 100 chains): errs towards a higher log p",
        (_RECIPE, "rbm_quality", "test log-likelihood (AIS)"),
        "−86.34, CD-25, 500 hidden (Salakhutdinov & Murray 2008)",
        budget=(
            _RECIPE,
            "rbm_quality",
            "training time (fit_rbm defaults, 133.3 PCD-1 epochs, 784x500)",
        ),
    ),
    Entry(
        MNIST,
        "RBM, PCD-1, centered",
        "ch-dbm",
        "784–500",
        "AIS log Z (14,501 β, 100 chains): errs towards a higher log p",
        (_CENTERED, "rbm_centered", "centered: test log-likelihood (AIS, 100 chains)"),
        "−84.86, 200 epochs (Melchior et al. 2016)",
        budget=(_CENTERED, "rbm_centered", "centered: training time (PCD-1, 784x500)"),
    ),
    Entry(
        MNIST,
        "RBM, PCD-1, bfloat16 products (session 3 recipe)",
        "ch-rbm",
        "784–500",
        "AIS log Z (14,501 β, 100 chains): errs towards a higher log p",
        (_RBM, "rbm_quality_bf16", "test log-likelihood (AIS)"),
        "−86.34, CD-25, 500 hidden (Salakhutdinov & Murray 2008)",
        budget=(_RBM, "rbm_quality_bf16", "training time (220 PCD-1 epochs, 784x500)"),
    ),
    Entry(
        MNIST,
        "DBN, greedy layer-wise",
        "ch-dbn",
        "784–500–2000",
        "variational bound + AIS log Z of the top RBM",
        None,
        "−86.22 (Salakhutdinov & Murray 2008)",
    ),
    Entry(
        MNIST,
        "DBM, variational SML",
        "ch-dbm",
        "784–500–1000",
        "mean-field bound + forward AIS log Z; bracket: reverse-AIS log Z",
        (
            "dbm-quality-cpu.json",
            "dbm_quality",
            "test log-likelihood lower bound (mean field, forward AIS log Z)",
        ),
        "−84.62, 20,000 β (Salakhutdinov & Hinton 2009)",
        bracket=(
            "dbm-quality-cpu.json",
            "dbm_quality",
            "the same bound with reverse-AIS log Z (the bracket's other end)",
        ),
        budget=(
            "dbm-quality-cpu.json",
            "dbm_quality",
            "end-to-end time (pretraining, training, evaluation)",
        ),
    ),
    Entry(
        MNIST,
        "sigmoid belief net, NVIL",
        "ch-sbn",
        "200–200–784",
        "variational bound / importance sampling",
        None,
        "−99.8, two hidden layers of 200 (Mnih & Gregor 2014)",
    ),
    Entry(
        MNIST,
        "VAE, one stochastic layer",
        "ch-vae",
        "784–200–200–50",
        "ELBO (10 samples): a lower bound",
        (
            "vae-cpu.json",
            "vae_mnist",
            "test ELBO, 10 samples (fixed binarization, 10,000 test images)",
        ),
        "−88.71 as IWAE-5000, fixed binarization (Burda et al. 2016, app. D)",
        budget=(
            "vae-cpu.json",
            "vae_mnist",
            "training time (784-200-200-50 tanh, Adam, batch 100; cpu, 50000 images, "
            "97 epochs)",
        ),
    ),
    Entry(
        MNIST,
        "VAE, one stochastic layer",
        "ch-vae",
        "784–200–200–50",
        "IWAE bound, k = 5000: a lower bound, tight as k grows",
        (
            "vae-cpu.json",
            "vae_mnist",
            "test log-likelihood, IWAE k = 5000 (fixed binarization, all 10,000 test "
            "images)",
        ),
        "−88.71, fixed binarization (Burda et al. 2016, app. D)",
        budget=(
            "vae-cpu.json",
            "vae_mnist",
            "training time (784-200-200-50 tanh, Adam, batch 100; cpu, 50000 images, "
            "97 epochs)",
        ),
    ),
    Entry(
        MNIST,
        "NADE",
        "ch-autoregressive",
        "784–500",
        "exact",
        ("nade-cpu.json", "nade", "exact test log-likelihood (best epoch 8)"),
        "−88.33 (Larochelle & Murray 2011)",
        budget=(
            "nade-cpu.json",
            "nade",
            "training time (8 epochs, 784x500, cpu, 2 threads)",
        ),
    ),
    Entry(
        MNIST,
        "MADE, 32 masks",
        "ch-autoregressive",
        "784–500–784",
        "exact (mixture over the orders)",
        None,
        "−86.64 (Germain et al. 2015)",
    ),
    Entry(
        DIGITS,
        "independent categorical per pixel",
        "ch-flows",
        "64 × 17 levels",
        "exact",
        (
            _FLOWS,
            "flows_digits",
            "baseline: independent categorical per pixel (add-one), test NLL",
        ),
        "— (this book's data set)",
    ),
    Entry(
        DIGITS,
        "full-covariance Gaussian",
        "ch-flows",
        "64-d",
        "exact",
        (
            _FLOWS,
            "flows_digits",
            "baseline: full-covariance Gaussian (ridge 0.1 on valid), test NLL",
        ),
        "—",
    ),
    Entry(
        DIGITS,
        "RealNVP",
        "ch-flows",
        "8 couplings, 2×256",
        "exact (change of variables)",
        (
            _FLOWS,
            "flows_digits",
            "RealNVP (8 couplings, 2x256 MLPs, actnorm): test NLL",
        ),
        "—",
        budget=(
            _FLOWS,
            "flows_digits",
            "RealNVP (8 couplings, 2x256 MLPs, actnorm): training time (20 epochs)",
        ),
    ),
    Entry(
        DIGITS,
        "MAF",
        "ch-flows",
        "8 MADEs, 1×512",
        "exact (change of variables)",
        (_FLOWS, "flows_digits", "MAF (8 layers, MADE 1x512, actnorm): test NLL"),
        "—",
        budget=(
            _FLOWS,
            "flows_digits",
            "MAF (8 layers, MADE 1x512, actnorm): training time (15 epochs)",
        ),
    ),
    Entry(
        DIGITS,
        "Glow-style flow",
        "ch-flows",
        "2 levels × 4 steps",
        "exact (change of variables)",
        (
            _FLOWS,
            "flows_digits",
            "Glow-style (2 levels x 4 steps, 32 channels): test NLL",
        ),
        "—",
        budget=(
            _FLOWS,
            "flows_digits",
            "Glow-style (2 levels x 4 steps, 32 channels): training time (30 epochs)",
        ),
    ),
    Entry(
        DIGITS,
        "DDPM",
        "ch-diffusion",
        "T = 200, MLP 3×256",
        "variational bound (an upper bound on the NLL)",
        (
            "diffusion-cpu.json",
            "diffusion_digits",
            "DDPM (T = 200, MLP 3x256, learned variance, logit pixels): test bound "
            "(NLL)",
        ),
        "—",
    ),
)


def results_dir(
    path: str | os.PathLike | None = None, *, download: bool = True
) -> Path:
    """Where the benchmark results are: ``path``, else ``$DGMLIB_RESULTS_DIR``, else
    ``benchmarks/results`` of the checkout dgmlib was imported from, else the user
    cache, filled from the repository (``download=True``) with the files
    :data:`ENTRIES` need. A file that cannot be fetched is left out: its rows then read
    "not run here" (the error is printed, never swallowed).
    """
    if path is not None:
        return Path(path)
    if os.environ.get("DGMLIB_RESULTS_DIR"):
        return Path(os.environ["DGMLIB_RESULTS_DIR"])
    checkout = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    if checkout.is_dir():
        return checkout
    from ..cache import cache_dir

    cached = cache_dir() / "results"
    cached.mkdir(parents=True, exist_ok=True)
    needed = {k[0] for e in ENTRIES for k in (e.value, e.bracket, e.budget) if k}
    for name in sorted(needed):
        dest = cached / name
        if dest.exists() or not download:
            continue
        try:
            with urllib.request.urlopen(REPO_RAW + name, timeout=30) as r:
                dest.write_bytes(r.read())
        except (urllib.error.URLError, OSError) as err:
            print(f"results_dir: could not fetch {name} from {REPO_RAW}: {err}")
    return cached


def load_results(folder: Path) -> dict[str, dict]:
    """Every ``*.json`` result file in ``folder``: name -> {"machine", "rows"}. A file
    that is not a valid result file raises, naming it (a corrupted file is never used).
    """
    out = {}
    for f in sorted(Path(folder).glob("*.json")):
        try:
            d = json.loads(f.read_text())
            ok = isinstance(d, dict) and {"machine", "rows"} <= d.keys()
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{f} is not valid JSON ({err}); delete or regenerate it"
            ) from err
        if not ok:
            raise ValueError(
                f"{f} is not a benchmark result file (expected keys 'machine' and "
                "'rows'); regenerate it with python -m benchmarks"
            )
        out[f.name] = d
    return out


def _find(results: dict, key: tuple[str, str, str]) -> tuple[dict, dict] | None:
    file, bench, what = key
    if file not in results:
        return None
    for row in results[file]["rows"]:
        if row["benchmark"] == bench and row["what"] == what:
            return row, results[file]["machine"]
    raise ValueError(
        f"{file} has no row ({bench!r}, {what!r}): the table's entry is out of date "
        "with the benchmark; update dgmlib.evaluate.table.ENTRIES"
    )


def _machine(m: dict) -> str:
    where = (
        f"{m['cuda']}" if m.get("cuda") else f"{m['cpu_count']}-core {m['processor']}"
    )
    return f"{where}, torch {m['torch']}, {m['when'][:10]}"


def likelihood_table(folder: str | os.PathLike | None = None) -> list[dict]:
    """The table's rows, in :data:`ENTRIES` order: dicts with ``data``, ``model``,
    ``chapter``, ``size``, ``estimator``, ``log_p`` (nats per example, None if not run),
    ``bracket`` (the other end, or None), ``budget`` (seconds, or None), ``machine``,
    ``status`` ("measured", "not run", "quick sizes only", or "untrusted: ..." when
    the bracket is wider than :data:`TRUSTED_BRACKET` nats: forward and reverse AIS
    then disagree and neither end is a log-likelihood) and ``published``.
    Test negative log-likelihoods are turned into log-likelihoods (log p = −NLL).
    """
    results = load_results(results_dir(folder))
    rows = []
    for e in ENTRIES:
        found = _find(results, e.value) if e.value else None
        row = dict(
            data=e.data,
            model=e.model,
            chapter=e.chapter,
            size=e.size,
            estimator=e.estimator,
            published=e.published,
            log_p=None,
            bracket=None,
            budget=None,
            machine="",
            status="not run",
        )
        if found is not None:
            r, machine = found
            sign = -1.0 if "NLL" in r["what"] else 1.0
            row.update(log_p=sign * r["value"], machine=_machine(machine))
            row["status"] = "quick sizes only" if machine.get("quick") else "measured"
            if e.bracket and (b := _find(results, e.bracket)):
                row["bracket"] = b[0]["value"]
                if abs(row["log_p"] - row["bracket"]) > TRUSTED_BRACKET:
                    row["status"] = "untrusted: the two AIS directions disagree"
            if e.budget and (t := _find(results, e.budget)):
                row["budget"] = t[0]["value"]
        rows.append(row)
    return rows


def _cell(r: dict) -> str:
    if r["log_p"] is None:
        return f"<em>{r['status']}</em>"
    text = f"{r['log_p']:.2f}".replace("-", "−")
    if r["status"].startswith("untrusted"):
        text = f"<s>{text}</s>"  # struck through: not a log-likelihood
    if r["bracket"] is not None:
        text += f"<br><small>reverse AIS: {r['bracket']:.2f}</small>".replace("-", "−")
    if r["status"] != "measured":
        text += f"<br><small>({r['status']})</small>"
    return text


def table_html(rows: list[dict]) -> str:
    """The rows of :func:`likelihood_table` as HTML: one table per data set, columns
    model (size), log p in nats per example, estimator, budget and machine, published.
    """
    from html import escape

    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        lines = [
            '<table class="likelihood-table" style="font-size: 0.85em">',
            f"<caption>{escape(data)}: test log-likelihood, nats per image</caption>",
            "<tr><th>model</th><th>log p</th><th>estimator</th>"
            "<th>budget, machine</th><th>published</th></tr>",
        ]
        for r in (r for r in rows if r["data"] == data):
            budget = "" if r["budget"] is None else f"{r['budget']:.0f} s, "
            lines.append(
                f"<tr><td>{escape(r['model'])} ({escape(r['size'])})</td>"
                f"<td>{_cell(r)}</td><td>{escape(r['estimator'])}</td>"
                f"<td>{escape(budget + r['machine'])}</td>"
                f"<td>{escape(r['published'])}</td></tr>"
            )
        out.append("\n".join(lines + ["</table>"]))
    return "\n".join(out)
