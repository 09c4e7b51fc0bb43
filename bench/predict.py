"""Benchmark: segsync-predict's training, scoring and backtest on a generated store.

The store is bench/segments_eval.py's synthetic business (deterministic SQL generators: the
same sizes give the same data; a contact's activity is skewed by its index, so past activity
predicts future activity, and 1% of the events are dated after as_of). For each model, in one
process:

1. what a sync run does (the ``segsync_score_contacts`` hook): SQL features at ``as_of - H``
   with outcomes until ``as_of``, training, SQL features at ``as_of``, scoring, writing the
   scores to ``contact_scores`` (timed per step);
2. the backtest of ``segsync predict report`` (AUC, top-decile lift, calibration).

Peak RSS is the process high-water mark (VmHWM: DuckDB, numpy and scikit-learn together),
reset before each model. ``--compare-threads 2`` also fits the 1-thread and the N-thread
estimator on the same training rows, interleaved (``--repeat`` times each), and reports the
medians: why the plugin trains on one thread unless told otherwise.

Usage (needs the plugin installed: ``make install``)::

    .venv/bin/python bench/predict.py                              # 1,000,000 contacts / 20,000,000 events
    .venv/bin/python bench/predict.py --contacts 20000 --events 400000 --db ''   # in memory, quick
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import sklearn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from segments_eval import AS_OF, generate, peak_mib, reset_peak  # noqa: E402

from segsync.scores import ScoreRun  # noqa: E402
from segsync_predict.backtest import backtest  # noqa: E402
from segsync_predict.features import frame  # noqa: E402
from segsync_predict.models import MODELS, THREADS_VARIABLE, estimator, predict, threads, train  # noqa: E402


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def seconds(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def compare_threads(con: duckdb.DuckDBPyConnection, n: int, repeat: int) -> str:
    spec = MODELS["churn_risk"]
    data = frame(con, AS_OF - 2 * spec.horizon, spec.outcome, spec.horizon)
    times: dict[int, list[float]] = {1: [], n: []}
    for _ in range(repeat):
        for k in (1, n):  # interleaved, so both see the same load
            os.environ[THREADS_VARIABLE] = str(k)
            with threads():
                times[k].append(seconds(lambda: estimator().fit(data.x, data.y))[0])
    os.environ[THREADS_VARIABLE] = "1"
    one, many = statistics.median(times[1]), statistics.median(times[n])
    return (f"fit of churn_risk on {len(data.keys):,} rows, median of {repeat}: 1 thread {one:.1f} s, "
            f"{n} threads {many:.1f} s ({many / one:.2f}x); {load()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--db", default="bench/data/predict.duckdb",
                   help="keep the generated store in this file and reuse it ('' : in memory)")
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--compare-threads", type=int, default=0, metavar="N")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)

    os.environ.setdefault(THREADS_VARIABLE, "1")
    path = Path(args.db) if args.db else None
    reuse = path is not None and path.exists()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path) if path else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    print(f"# {' '.join(['bench/predict.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"duckdb {duckdb.__version__}, scikit-learn {sklearn.__version__}, python "
          f"{platform.python_version()}, {os.cpu_count()} cpus, estimator threads "
          f"{os.environ[THREADS_VARIABLE]}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {load()}")
    t, _ = seconds(lambda: None if reuse else generate(con, args.contacts, args.events))
    n_contacts, n_events = (con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                            for t in ("contacts", "events"))
    print(f"{n_contacts:,} contacts, {n_events:,} events "
          f"({'reused' if reuse else f'generated in {t:.0f} s'}), as_of {AS_OF:%Y-%m-%d}")
    con.execute("DELETE FROM contact_scores")
    con.execute("DELETE FROM score_runs")

    print("\n| model | train rows | train: features s | train: fit s | scored contacts | "
          "score: features s | score: predict s | write s | run's hook in all s | peak RSS MiB | "
          "AUC | top-decile lift | base rate |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    scores = ScoreRun(con, 1, AS_OF, frozenset(args.models))
    calibrations = []
    for name in args.models:
        spec = MODELS[name]
        reset_peak()
        fit_s, trained = seconds(lambda: train(con, spec, AS_OF))
        data_s, data = seconds(lambda: frame(con, AS_OF))
        predict_s, probabilities = seconds(lambda: predict(trained, data))
        write_s, _ = seconds(lambda: scores.write(name, data.keys, probabilities.tolist()))
        rss = peak_mib()
        result = backtest(con, spec, AS_OF)
        calibrations.append(result)
        print(f"| {name} | {trained.rows:,} | {trained.features_seconds:.1f} | "
              f"{fit_s - trained.features_seconds:.1f} | {len(data.keys):,} | {data_s:.1f} | "
              f"{predict_s:.1f} | {write_s:.1f} | {fit_s + data_s + predict_s + write_s:.1f} | "
              f"{rss:,.0f} | {result.auc:.3f} | {result.lift_top_decile:.2f}x | {result.base_rate:.1%} |")
        sys.stdout.flush()
    print(f"\n{load()}")
    for result in calibrations:
        print(f"\n{result.model} calibration (tenths by prediction, highest first): "
              + ", ".join(f"{c.predicted:.0%}→{c.observed:.0%}" for c in result.calibration))
    if args.compare_threads:
        print("\n" + compare_threads(con, args.compare_threads, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
