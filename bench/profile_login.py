"""What a sign-in costs beyond its password hash, in process. Prints ms per sign-in.

Production settings on Postgres (a scratch database it creates and drops), the WSGI
handler as gunicorn calls it, N `tokenAuth` sign-ins spread over a few accounts, against
N checks of the same password with the production hasher alone. The difference is the
sign-in's own overhead (PERFORMANCE.md: at most 3 ms). With REDIS_URL set, the rate
limits and the session cache use Redis, as in production. `--profile` prints cProfile's
top functions of the sign-ins.

    .venv/bin/python bench/profile_login.py
    REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/profile_login.py
    .venv/bin/python bench/profile_login.py --profile --sort tottime

Environment: PROFILE_PG_URL (default postgres://postgres@127.0.0.1:5432), N (300).
"""

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inprocess import production_django, wsgi_post  # noqa: E402 (after the path)

N = int(os.environ.get("N", "300"))
ACCOUNTS = 20
PASSWORD = "profiled-Password-1"  # noqa: S105 (a benchmark account's)
MUTATION = "mutation($email:String!,$password:String!){ tokenAuth(email:$email,password:$password){ token } }"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="pstats order for --profile (cumulative, tottime)")
    args = parser.parse_args()
    # Budgets large enough that no sign-in here is refused; every one is still counted.
    with production_django(
        "gh_profile_login", LOGIN_RATE_PER_ACCOUNT="1000000/60", LOGIN_RATE_PER_ADDRESS="1000000/60"
    ):
        run(args)


def run(args):
    from django.core.handlers.wsgi import WSGIHandler

    from accounts.models import User

    users = [User.objects.create_user(f"p{i}", f"p{i}@example.com", PASSWORD) for i in range(ACCOUNTS)]
    for user in users:
        User.objects.filter(pk=user.pk).update(is_email_verified=True)
    handler = WSGIHandler()

    def sign_in(i):
        body = json.dumps(
            {"query": MUTATION, "variables": {"email": f"p{i % ACCOUNTS}@example.com", "password": PASSWORD}}
        ).encode()
        status, answer = wsgi_post(handler, body, {})
        if not status.startswith("200") or b'"token":"' not in answer:
            raise SystemExit(f"tokenAuth: unexpected answer {status} {answer[:300]!r}")

    def hash_check(i):
        if not users[i % ACCOUNTS].check_password(PASSWORD):
            raise SystemExit("the password did not verify")

    for i in range(2 * ACCOUNTS):  # warm up: connections, caches, the hasher's memory
        sign_in(i)
        hash_check(i)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(N):
            sign_in(i)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
        return
    # Interleaved, so that drift on a shared machine touches both alike.
    signins, hashes = [], []
    for i in range(N):
        for call, figures in ((sign_in, signins), (hash_check, hashes)):
            start = time.perf_counter()
            call(i)
            figures.append((time.perf_counter() - start) * 1e3)
    redis = "set" if os.environ.get("REDIS_URL") else "unset"
    hasher = users[0].password.split("$")[3]
    print(f"in-process, production settings, Postgres, REDIS_URL={redis}, {N} sign-ins, ms (median, p90)")
    for name, figures in (("tokenAuth", signins), (f"hasher alone ({hasher})", hashes)):
        print(f"  {name:<34} {statistics.median(figures):7.2f} {statistics.quantiles(figures, n=10)[-1]:7.2f}")
    overhead = [s - h for s, h in zip(signins, hashes, strict=True)]
    print(f"  {'overhead (tokenAuth - hasher)':<34} {statistics.median(overhead):7.2f}")


if __name__ == "__main__":
    main()
