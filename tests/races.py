"""Helpers for races that only a real database with concurrent connections can show (Postgres).

Each contender runs in its own thread, so it has its own database connection, and goes
through Django's whole request stack, as a request in another worker would.
"""

import json
import threading
import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.test import Client

# Far above any lock wait a correct build has; a deadlock is reported by Postgres after
# deadlock_timeout (1 s), a hang by the join timing out.
THREAD_TIMEOUT = 30


def post(body: dict, token: str | None = None, client: Client | None = None) -> dict:
    """Post one GraphQL body (from a fresh client unless given one); return its status and JSON body."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    client = client or Client(HTTP_HOST="localhost")
    response = client.post("/graphql", json.dumps(body), "application/json", **headers)
    return {"status": response.status_code, "body": response.json()}


def post_in_parallel(bodies: list[dict], token: str | None = None) -> list[dict]:
    """Post every body at once, each from its own thread and database connection."""
    return run_in_parallel([lambda body=body: post(body, token) for body in bodies]).results


@dataclass
class ParallelRun:
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (index, exception) raised by a callable
    hung: list = field(default_factory=list)  # indexes of threads still running at the timeout


def run_in_parallel(calls: list, *, delays: list[float] | None = None, timeout: float = THREAD_TIMEOUT) -> ParallelRun:
    """Run every callable at once (after a barrier, each after its own delay), in its own thread.

    Returns what each returned, what each raised and which never finished. Each thread
    closes its own database connection.
    """
    delays = delays or [0.0] * len(calls)
    barrier = threading.Barrier(len(calls))
    run = ParallelRun(results=[None] * len(calls))

    def target(index, call):
        try:
            barrier.wait(timeout=10)
            if delays[index]:
                time.sleep(delays[index])
            run.results[index] = call()
        except Exception as exc:  # reported to the test, which fails on it
            run.errors.append((index, exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for index, thread in enumerate(threads):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            run.hung.append(index)
    return run


def race_with_held_transaction(hold, contender, lock: str):
    """Run `hold()` in a transaction left open, then `contender()` beside it; return its result.

    The holder commits only once the contender is seen waiting on a database lock (`lock`
    names that lock in the failure message), so the contender's path through the lock
    is the one exercised.
    """
    held, release = threading.Event(), threading.Event()
    outcome = {}

    def holder():
        try:
            with transaction.atomic():
                outcome["held"] = hold()
                held.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    def contend():
        try:
            outcome["result"] = contender()
        finally:
            connection.close()

    holding = threading.Thread(target=holder)
    holding.start()
    assert held.wait(timeout=10)
    contending = threading.Thread(target=contend)
    contending.start()
    waited = wait_for_a_lock_wait()
    release.set()
    holding.join(timeout=10)
    contending.join(timeout=10)
    assert waited, f"the contender never waited on {lock}"
    return outcome["result"]


def wait_for_a_lock_wait(timeout: float = 10.0) -> bool:
    """Return True once another backend of this database waits on a lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False
