"""``make bench``: run every ``tests/bench/bench_*.py``, print one table, write the results.

Each module exposes ``run(out_dir) -> list[dict]``; rows name the in-process limit they
are compared with (``ratio_vs_inprocess``). Results go to ``bench-results/`` as JSON and
Markdown, stamped with the machine they ran on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import platform
import sys
import time

COLUMNS = ("bench", "case", "throughput_per_s", "p50_ms", "p99_ms", "ratio_vs_inprocess")


def _load(path: pathlib.Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    out_dir = pathlib.Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    only = sys.argv[1:]
    rows: list[dict] = []
    for path in sorted(pathlib.Path(__file__).parent.glob("bench_*.py")):
        if only and path.stem.removeprefix("bench_") not in only:
            continue
        print(f"==> [bench] {path.stem}", flush=True)
        started = time.perf_counter()
        new = _load(path).run(out_dir)
        print(markdown(new), flush=True)
        print(f"    ({time.perf_counter() - started:.0f}s)", flush=True)
        rows += new
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out_dir / "results.json").write_text(json.dumps({"when": stamp, "machine": machine, "rows": rows}, indent=2))
    (out_dir / "results.md").write_text(f"# make bench, {stamp} ({machine})\n\n{markdown(rows)}\n")
    print(f"\n==> [bench] all results ({machine}):\n{markdown(rows)}\n\nwritten to {out_dir}/results.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
