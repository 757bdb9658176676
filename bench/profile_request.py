"""Where one GraphQL request spends its time, in process. Prints µs per request.

Production settings on Postgres (a scratch database it creates and drops), Django's test
client, N requests each of `me` with a valid token, without a token and with an invalid
one (signature bytes flipped). With REDIS_URL set, the valid-token request is served from
the shared cache after the first. `--profile SCENARIO` prints cProfile's top functions.

    .venv/bin/python bench/profile_request.py                    # Postgres, no Redis
    REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/profile_request.py
    .venv/bin/python bench/profile_request.py --profile valid

Environment: PROFILE_PG_URL (default postgres://postgres@127.0.0.1:5432), N (2000).
To compare with an older tree, copy this file into its bench/ and run it there.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inprocess import production_django, wsgi_post  # noqa: E402 (after the path)

N = int(os.environ.get("N", "2000"))
QUERY = b'{"query": "query { me { id username email } }"}'


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=("valid", "none", "invalid"))
    parser.add_argument("--sort", default="cumulative", help="pstats order for --profile (cumulative, tottime)")
    args = parser.parse_args()
    # A day, so that the token minted below outlives the run.
    with production_django("gh_profile", JWT_ACCESS_TOKEN_LIFETIME="86400"):  # noqa: S106 (a lifetime)
        run(args)


def run(args):
    from django.test import Client

    from accounts.models import User
    from accounts.services import session_open

    user = User.objects.create_user("profiled", "profiled@example.com", "x-Password-1")
    token = session_open(user=user).token
    head, payload, signature = token.split(".")
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    scenarios = {
        "valid": {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        "none": {},
        "invalid": {"HTTP_AUTHORIZATION": f"Bearer {head}.{payload}.{flipped}"},
    }
    client = Client(HTTP_X_FORWARDED_PROTO="https", HTTP_ACCEPT="application/json")

    def send(headers):
        return client.post("/graphql", QUERY, content_type="application/json", **headers)

    for name, headers in scenarios.items():
        response = send(headers)
        if response.status_code != 200 or ("errors" in response.json()) != (name == "invalid"):
            raise SystemExit(f"{name}: unexpected answer {response.status_code} {response.content!r}")
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def call_wsgi(headers):
        wsgi_post(handler, QUERY, headers)

    if args.profile:
        # Through the WSGI handler, as gunicorn calls it (the test client adds its own costs).
        headers = scenarios[args.profile]
        for _ in range(200):
            call_wsgi(headers)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(N):
            call_wsgi(headers)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
        return

    redis = "set" if os.environ.get("REDIS_URL") else "unset"
    print(f"in-process, production settings, Postgres, REDIS_URL={redis}, {N} requests each, µs per request")
    print("  scenario    test client   WSGI handler (as gunicorn calls it)")
    for name, headers in scenarios.items():
        figures = []
        for call in (send, call_wsgi):
            for _ in range(200):
                call(headers)
            start = time.perf_counter()
            for _ in range(N):
                call(headers)
            figures.append((time.perf_counter() - start) / N * 1e6)
        print(f"  me {name:<8} {figures[0]:11.0f}   {figures[1]:11.0f}")


if __name__ == "__main__":
    main()
