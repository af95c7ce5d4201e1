"""Run the benchmarks side by side and write JSON plus a Markdown table (see
benchmarks/__init__.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from .common import machine


def suites() -> dict:
    """Every ``BENCHMARKS`` dict of the modules in this package, merged
    (name -> function).
    """
    found = {}
    for info in sorted(
        pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name
    ):
        if info.name in {"common", "__main__"}:
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        found.update(getattr(module, "BENCHMARKS", {}))
    return found


SUITES = suites()
OUT = Path(__file__).resolve().parent / "results"


def markdown(rows: list[dict], info: dict) -> str:
    lines = [
        f"Machine: {info['processor']}, {info['cpu_count']} CPUs "
        f"({info['torch_threads']} torch threads), GPU: {info['cuda'] or 'none'}; "
        f"torch {info['torch']}, scikit-learn {info.get('sklearn', '-')}; "
        f"{info['when']}"
        + (" — QUICK sizes, not the real benchmark" if info.get("quick") else ""),
        "",
        "| benchmark | what | value | unit | target | pass | reference |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in rows:
        ok = "" if r["passed"] is None else ("yes" if r["passed"] else "**no**")
        what, ref = (str(r[k]).replace("|", "\\|") for k in ("what", "reference"))
        lines.append(
            f"| {r['benchmark']} | {what} | {r['value']:.4g} | {r['unit']} | "
            f"{r['target']} | {ok} | {ref} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: checks the code runs; numbers mean nothing",
    )
    ap.add_argument(
        "--name",
        default=None,
        help="result file name (default: quick or full + device)",
    )
    args = ap.parse_args(argv)
    info = machine() | {"when": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick}
    rows = []
    for name in args.only or SUITES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rows += [r.as_dict() for r in SUITES[name](quick=args.quick)]
        print(
            f"  {name} done in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    name = args.name or (
        ("quick" if args.quick else "full") + "-" + ("cuda" if info["cuda"] else "cpu")
    )
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(
        json.dumps({"machine": info, "rows": rows}, indent=2)
    )
    table = markdown(rows, info)
    (OUT / f"{name}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
