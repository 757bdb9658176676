"""What does the bounded wait (config.db) cost a query? Prints figures.

Runs `SELECT 1` on one psycopg2 connection of the kind the backend opens
(BoundedConnection, with the default limits), alternately with libpq's own blocking wait
and with config.db's wait callback, in many short interleaved rounds, and prints for each
the median microseconds per query, of wall-clock time and of this process's CPU time
(the figure that neighbours on a busy machine disturb least), and the median of the
paired differences. Usage, from the repository root:

    .venv/bin/python bench/db_wait_overhead.py
    BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres QUERIES=1000 ROUNDS=41 \\
        .venv/bin/python bench/db_wait_overhead.py
"""

import functools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2
from psycopg2 import extensions

from config.db import BoundedConnection, wait_bounded

URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
QUERIES = int(os.environ.get("QUERIES", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "41"))


def microseconds_per_query(cursor) -> tuple[float, float]:
    """Return (wall-clock, CPU) microseconds per query of one round."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(QUERIES):
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return (time.perf_counter() - wall) / QUERIES * 1e6, (time.process_time() - cpu) / QUERIES * 1e6


def main() -> None:
    factory = functools.partial(BoundedConnection, connect_timeout=3.0, query_timeout=7.0)
    connection = psycopg2.connect(URL, connection_factory=factory)
    connection.autocommit = True  # as Django runs it
    cursor = connection.cursor()
    plain, bounded = [], []
    for _ in range(ROUNDS):
        # psycopg2 reads the callback at each query, so one connection serves both.
        extensions.set_wait_callback(None)
        plain.append(microseconds_per_query(cursor))
        extensions.set_wait_callback(wait_bounded)
        bounded.append(microseconds_per_query(cursor))
    extensions.set_wait_callback(None)
    connection.close()
    print(f"SELECT 1, µs per query, median of {ROUNDS} interleaved rounds of {QUERIES}: wall-clock / CPU")
    for name, figures in (("libpq wait", plain), ("bounded wait", bounded)):
        wall, cpu = (statistics.median(figure[i] for figure in figures) for i in (0, 1))
        print(f"{name:>12}: {wall:6.1f} / {cpu:5.1f}")
    wall, cpu = (statistics.median(b[i] - p[i] for p, b in zip(plain, bounded, strict=True)) for i in (0, 1))
    print(f"{'overhead':>12}: {wall:+6.1f} / {cpu:+5.1f}")


if __name__ == "__main__":
    main()
