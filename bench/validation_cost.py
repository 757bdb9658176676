"""What does the worst document under the size limits cost to refuse or validate? Prints figures.

Builds documents within the limits on length (8,000 characters) and tokens (1,000) that
make graphql-core's validation work hardest (duplicated fields, which the overlap rule
compares pairwise; many distinct unknown fields; fragments spread many times; nested
duplicates; duplicates with arguments), each prefixed with a different comment so that
the prepared-document cache never hits, and times schema.views.prepare on each (with
introspection on, as locally, and off, as in production), then a whole request through
Django's test client. Usage, from the repository root:

    .venv/bin/python bench/validation_cost.py            # in-process: prepare and the test client
    .venv/bin/python bench/validation_cost.py --live     # also: `me` latency under gunicorn (production
                                                         # settings, SQLite) while 4 threads send the worst document

To compare with an older tree, copy this file into its bench/ and run it there.
"""

import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from graphql import parse  # noqa: E402

from schema.views import current_policy, prepare  # noqa: E402

RUNS = int(os.environ.get("RUNS", "7"))
MAX_LENGTH = settings.GATEHOUSE["MAX_QUERY_LENGTH"]
MAX_TOKENS = settings.GATEHOUSE["MAX_TOKENS"]
USER_FIELDS = "id username email dateJoined lastLogin isEmailVerified"


def fill(head: str, unit: str, tail: str, unit_tokens: int, fixed_tokens: int, nonce: int) -> str:
    """Return `head + unit * n + tail`, with as many units as the token and length limits allow."""
    prefix = f"# {nonce}\n"  # graphql-core counts a comment as one token
    count = min((MAX_TOKENS - 1 - fixed_tokens) // unit_tokens, (MAX_LENGTH - len(prefix + head + tail)) // len(unit))
    return prefix + head + unit * count + tail


def duplicate_fields(n):
    return fill("{ me { ", "id ", "} }", 1, 5, n)


def distinct_unknown_fields(n):
    prefix = f"# {n}\n{{ me {{ "
    names, length = [], len(prefix) + 3
    for i in range(MAX_TOKENS - 6):
        name = f"f{i} "
        if length + len(name) > MAX_LENGTH:
            break
        names.append(name)
        length += len(name)
    return prefix + "".join(names) + "} }"


def fragment_spread_many_times(n):
    fragment = f" fragment F on User {{ {USER_FIELDS} }}"
    return fill("{ me { ", "...F ", "} }" + fragment, 2, 5 + 5 + len(USER_FIELDS.split()), n)


def inline_fragments(n):
    return fill("{ me { ", "... on User { id } ", "} }", 6, 5, n)


def nested_duplicates(n):
    # Ten `me` (the root-field limit), each with `sessions` holding copies of `id`.
    per = (MAX_TOKENS - 3 - 10 * 6) // 10
    block = "me { sessions { " + "id " * per + "} } "
    return f"# {n}\n{{ " + block * 10 + "}"


def an_unused_fragment(n):
    # A fragment no operation spreads: the overlap rule would still compare its fields.
    return f"# {n}\n{{ me {{ id }} }} fragment X on User {{ " + "id " * (MAX_TOKENS - 20) + "}"


def a_fragment_defined_twice(n):
    # The second definition of a name, spread by nobody in effect.
    return (
        f"# {n}\n{{ me {{ ...X }} }} fragment X on User {{ id }} fragment X on User {{ "
        + "id " * (MAX_TOKENS - 30)
        + "}"
    )


def fragments_of_duplicates(n):
    # Three fragments full of `id`: compared within and against each other.
    per = (MAX_TOKENS - 12 - 3 * 7) // 3
    fragments = "".join(f" fragment {name} on User {{ " + "id " * per + "}" for name in "ABC")
    return f"# {n}\n{{ me {{ ...A ...B ...C }} }}" + fragments


def duplicates_with_arguments(n):
    # Needs introspection: `fields(includeDeprecated: true)` repeated, arguments compared pairwise.
    return fill("{ __schema { types { ", "fields(includeDeprecated: true) { name } ", "} } }", 9, 9, n)


def exponential_fragments(n):
    levels = 12
    fragments = "".join(f" fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"# {n}\n{{ me {{ ...F0 }} }}" + fragments + f" fragment F{levels} on User {{ {USER_FIELDS} }}"


MAX_SELECTIONS = settings.GATEHOUSE.get("MAX_SELECTIONS", 5_000)
MAX_PER_SET = settings.GATEHOUSE.get("MAX_SELECTIONS_PER_SET", MAX_TOKENS)
MAX_PAIRS = settings.GATEHOUSE.get("MAX_FIELD_PAIRS", MAX_TOKENS**2)
MAX_ALIASES = settings.GATEHOUSE["MAX_ALIASES"]


def copies_within(pairs: int) -> int:
    """Return the most copies of one field a set may hold with at most `pairs` pairs."""
    copies = 1
    while copies < min(MAX_PER_SET, MAX_TOKENS - 10) and (copies + 1) * copies // 2 <= pairs:
        copies += 1
    return copies


def duplicates_at_the_bounds(n):
    # One set holding as many copies of a field as the bounds allow.
    return f"# {n}\n{{ me {{ " + "id " * copies_within(MAX_PAIRS) + "} }"


def duplicates_in_many_sets_at_the_bounds(n):
    # The pair budget spread over as many merged sets as the aliases allow.
    sets = MAX_ALIASES
    per = min(copies_within(MAX_PAIRS // sets), (MAX_TOKENS - 8) // sets - 5)
    blocks = "".join(f"s{i}: sessions {{ " + "id " * per + "} " for i in range(sets))
    return f"# {n}\n{{ me {{ {blocks}}} }}"


def arguments_at_the_bounds(n):
    # Needs introspection: `fields(includeDeprecated: true) { name }` repeated (two pairs per pair).
    per = min(copies_within(MAX_PAIRS // 2), (MAX_SELECTIONS - 2) // 2, (MAX_TOKENS - 10) // 9)
    return f"# {n}\n{{ __schema {{ types {{ " + "fields(includeDeprecated: true) { name } " * per + "} } }"


def fragments_at_the_bounds(n):
    # A fragment as large as a set may be, spread into as many aliased sets as the total allows.
    per = min(copies_within(MAX_PAIRS // 10), MAX_TOKENS - 100)
    sets = min(MAX_SELECTIONS // (per + 2), MAX_ALIASES, settings.GATEHOUSE["MAX_ROOT_FIELDS"])
    spreads = "".join(f"a{i}: me {{ ...F }} " for i in range(sets))
    return f"# {n}\n{{ {spreads}}} fragment F on User {{ " + "id " * per + "}"


def selections_at_the_bounds(n):
    # As many selections as the total allows, few of them repeated: `sessions` under aliases.
    fields = "id createdAt lastUsedAt expiresAt userAgent ipAddress current __typename "
    blocks, count = [], 2
    for i in range(MAX_ALIASES):
        if count + 9 > MAX_SELECTIONS:
            break
        blocks.append(f"s{i}: sessions {{ {fields}}} ")
        count += 9
    return f"# {n}\n{{ me {{ {''.join(blocks)}}} }}"


DOCUMENTS = {
    "duplicate fields": duplicate_fields,
    "distinct unknown fields": distinct_unknown_fields,
    "one fragment spread many times": fragment_spread_many_times,
    "inline fragments": inline_fragments,
    "nested duplicates": nested_duplicates,
    "fragments of duplicates": fragments_of_duplicates,
    "an unused fragment": an_unused_fragment,
    "a fragment defined twice": a_fragment_defined_twice,
    "duplicates with arguments": duplicates_with_arguments,
    "exponential fragments": exponential_fragments,
    "duplicates at the bounds": duplicates_at_the_bounds,
    "duplicates in sets at the bounds": duplicates_in_many_sets_at_the_bounds,
    "many selections at the bounds": selections_at_the_bounds,
    "arguments at the bounds": arguments_at_the_bounds,
    "a fragment at the bounds": fragments_at_the_bounds,
    "typical: `me`": lambda n: f"# {n}\nquery Me {{ me {{ {USER_FIELDS} }} }}",
}


def check_size(query: str) -> None:
    if len(query) > MAX_LENGTH:
        raise SystemExit(f"a document of {len(query)} characters is over the limit")
    parse(query, max_tokens=MAX_TOKENS)


def outcome(prepared) -> str:
    if prepared.document is not None:
        return "valid"
    return f"{prepared.code.value}: {prepared.errors[0].message[:60]}"


def time_prepare(build, introspection: bool, nonce_base: int) -> tuple[list[float], str]:
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "INTROSPECTION": introspection}):
        policy = current_policy()
        timings, result = [], ""
        for run in range(RUNS):
            query = build(nonce_base + run)
            start = time.perf_counter()
            prepared = prepare(query, policy)
            timings.append((time.perf_counter() - start) * 1000)
            result = outcome(prepared)
    return timings, result


def time_parse(build, nonce_base: int) -> list[float]:
    timings = []
    for run in range(RUNS):
        query = build(nonce_base + run)
        start = time.perf_counter()
        parse(query, max_tokens=MAX_TOKENS)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def time_request(client, build, nonce_base: int) -> list[float]:
    timings = []
    for run in range(RUNS):
        body = json.dumps({"query": build(nonce_base + run)})
        start = time.perf_counter()
        response = client.post("/graphql", body, content_type="application/json")
        timings.append((time.perf_counter() - start) * 1000)
        if response.status_code not in (200, 400):
            raise SystemExit(f"unexpected status {response.status_code}")
    return timings


def in_process() -> None:
    setup_test_environment()
    client = Client(HTTP_HOST="localhost")
    # The minimum is the document's own cost; the median adds whatever else the machine was doing.
    print(f"{RUNS} runs each, a new comment every run (no cache hit); min / median milliseconds")
    start = time.perf_counter()
    sum(range(1_000_000))
    print(f"calibration: sum(range(10**6)) takes {(time.perf_counter() - start) * 1000:.1f} ms on this machine")
    print(f"limits: {MAX_SELECTIONS} selections, {MAX_PER_SET} per merged set, {MAX_PAIRS} field pairs")
    columns = ("parse alone", "prepare, introspection on", "introspection off", "HTTP request")
    print(f"{'document':32}" + "".join(f"{c:>26}" for c in columns) + "  outcome (introspection on)")
    worst = 0.0
    for number, (name, build) in enumerate(DOCUMENTS.items()):
        check_size(build(0))
        base = (number + 1) * 1_000_000
        floor = time_parse(build, base + 3_000)
        on, result = time_prepare(build, True, base)
        off, _ = time_prepare(build, False, base + 1_000)
        http = time_request(client, build, base + 2_000)
        worst = max(worst, min(on), min(off))
        cells = [f"{min(t):7.1f} / {statistics.median(t):6.1f}" for t in (floor, on, off, http)]
        print(f"{name:32}" + "".join(f"{c:>26}" for c in cells) + f"  {result}")
    print(f"worst prepare (min of {RUNS}): {worst:.1f} ms")


# --- live: `me` under gunicorn while four threads send the worst document -------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, query: str, token: str | None = None, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Forwarded-Proto", "https")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def me_latencies(port: int, token: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        status, body = post(port, "{ me { username } }", token)
        timings.append((time.perf_counter() - start) * 1000)
        if status != 200 or body["data"]["me"]["username"] != "bench":
            raise SystemExit(f"unexpected answer to `me`: {status} {body}")
    return timings


def live() -> None:
    tmp = tempfile.mkdtemp()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [python, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        register = (
            'mutation { register(username: "bench", email: "bench@example.com",'
            ' password: "a-Long-bench-passphrase-1") { token errors { code } } }'
        )
        _, body = post(port, register)
        token = body["data"]["register"]["token"]
        me_latencies(port, token, 20)
        alone = me_latencies(port, token, 100)

        def attack(offset: int) -> None:
            nonce = 10_000_000 * (offset + 1)
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline:
                nonce += 1
                with contextlib.suppress(OSError):
                    post(port, duplicate_fields(nonce), timeout=60)

        attackers = [threading.Thread(target=attack, args=(i,)) for i in range(4)]
        for thread in attackers:
            thread.start()
        time.sleep(1)
        loaded = me_latencies(port, token, 50)
        stop.set()
        for thread in attackers:
            thread.join()
        workers = env.get("WEB_CONCURRENCY", "2")
        print(f"`me` under gunicorn ({workers} sync workers, production settings, SQLite), median / mean / p90 ms:")
        for label, timings in (("alone", alone), ("4 threads sending duplicate fields", loaded)):
            p90 = statistics.quantiles(timings, n=10)[-1]
            print(f"  {label:36} {statistics.median(timings):7.1f} / {statistics.mean(timings):7.1f} / {p90:7.1f}")
    finally:
        stop.set()
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    in_process()
    if "--live" in sys.argv:
        live()
