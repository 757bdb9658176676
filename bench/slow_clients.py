"""Slow clients, gunicorn published directly vs nginx in front: prints normal-traffic figures.

Serves Gatehouse as the shipped deployment does (tests/test_slow_clients.py: production
settings, SQLite, `gunicorn -c config/gunicorn.py`, and nginx with the template
docker-compose.yml mounts) and measures, interleaved over ROUNDS rounds, on gunicorn's own
port (the old arrangement) and through nginx (the shipped one):

- normal traffic (anonymous `{ me { id } }` POSTs and GET /healthz from THREADS threads,
  one connection per request) with no slow client, and with 100 slow clients open;
- `{ me { id } }` with a valid Bearer token: the cost of the extra hop.

Prints req/s (median of the rounds) and p50/p99 latency (all requests of all rounds); a
request that gets no answer within 5 s counts as failed, with 5 s as its latency. Usage,
from the repository root (needs nginx; about 35 s a round):

    .venv/bin/python bench/slow_clients.py            # ROUNDS=3 SECONDS=5 THREADS=4
"""

import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

from tests.test_slow_clients import (
    SLOW_CLIENTS,
    SlowClients,
    Traffic,
    nginx_binary,
    normal_traffic,
    serve,
    shipped_proxy,
)

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("SECONDS", "5"))
THREADS = int(os.environ.get("THREADS", "4"))
REGISTER = (
    "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) { token } }"
)


def register(address) -> str:
    """Register a user over HTTP and return its access token."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        body = {"query": REGISTER, "variables": {"u": "bench", "e": "bench@example.com", "p": "a-Long-passphrase-1"}}
        connection.request("POST", "/graphql", json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())["data"]["register"]["token"]
    finally:
        connection.close()


def recover(address, seconds=40.0):
    """Wait until the server answers /healthz again (gunicorn after its slow clients left)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection(*address, timeout=2)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        time.sleep(0.2)


def measure(address, scenario, token) -> Traffic:
    if scenario == "me with a token":
        return normal_traffic(address, SECONDS, threads=THREADS, token=token)
    if scenario == "normal, 0 slow":
        return normal_traffic(address, SECONDS, threads=THREADS)
    with SlowClients(address, SLOW_CLIENTS):
        time.sleep(1.0)
        traffic = normal_traffic(address, SECONDS, threads=THREADS)
    recover(address)
    return traffic


def main() -> None:
    proxy = shipped_proxy()
    if proxy is None or nginx_binary() is None:
        raise SystemExit("needs nginx and a docker-compose.yml whose published service is the nginx proxy")
    scenarios = ("normal, 0 slow", f"normal, {SLOW_CLIENTS} slow", "me with a token")
    results: dict[tuple[str, str], list[Traffic]] = {}
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), proxy=proxy) as served:
        targets = {"gunicorn direct (old)": served.gunicorn, "nginx in front": served.public}
        token = register(served.gunicorn)
        for address in targets.values():
            normal_traffic(address, 2.0, threads=THREADS)  # warm up
        for round_number in range(ROUNDS):
            order = list(targets.items())
            if round_number % 2:
                order.reverse()
            for scenario in scenarios:
                for label, address in order:
                    traffic = measure(address, scenario, token)
                    results.setdefault((label, scenario), []).append(traffic)
                    print(
                        f"round {round_number + 1} {label:22} {scenario:18} {traffic.rate:7.1f} req/s "
                        f"{traffic.failed:3} failed",
                        file=sys.stderr,
                    )

    print(f"{ROUNDS} rounds of {SECONDS:g} s, {THREADS} client threads, 2 sync workers")
    print(f"{'arrangement':22} {'scenario':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    rates = {}
    for scenario in scenarios:
        for label in targets:
            runs = results[(label, scenario)]
            merged = Traffic(sum(run.seconds for run in runs))
            for run in runs:
                merged.latencies += run.latencies
                merged.failed += run.failed
            rates[(label, scenario)] = statistics.median(run.rate for run in runs)
            print(
                f"{label:22} {scenario:18} {rates[(label, scenario)]:8.1f} {merged.p50 * 1000:8.1f} "
                f"{merged.percentile(0.99) * 1000:8.1f} {merged.failed:7}"
            )
    direct, proxied = (rates[(label, "me with a token")] for label in targets)
    print(
        f"extra hop on `me` with a token: nginx/direct = {proxied / direct:.2f} ({proxied:.1f} vs {direct:.1f} req/s)"
    )


if __name__ == "__main__":
    main()
