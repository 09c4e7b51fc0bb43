"""Benchmark: the Python side of an evaluation (compiling the rules, rendering the SQL).

The 18 segments of bench/segments_eval.py are compiled (``build_query``) and rendered to
DuckDB SQL ``--repeat`` times; no store is needed. Prints each run and the medians.

Usage::

    python bench/segments_compile.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from segments_eval import AS_OF, segments  # noqa: E402

from segsync.segments import default_registry  # noqa: E402
from segsync.segments.query import build_query  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    segs, groups = segments()
    registry = default_registry()
    print(f"load {os.getloadavg()}")
    build_query(segs, groups, AS_OF, registry)  # imports and first-use costs, untimed
    compiled, rendered = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        query = build_query(segs, groups, AS_OF, registry)
        t1 = time.perf_counter()
        query.select().sql("duckdb", copy=False)
        t2 = time.perf_counter()
        compiled.append(t1 - t0)
        rendered.append(t2 - t1)
        print(f"compile {t1 - t0:.3f} s  render {t2 - t1:.3f} s")
    print(f"median: compile {statistics.median(compiled):.3f} s  render {statistics.median(rendered):.3f} s")
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
