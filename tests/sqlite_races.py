"""Concurrent sign-ins and refreshes against a SQLite file database, over HTTP.

Run by tests/test_sqlite_races.py in a subprocess: the suite's own SQLite database is in
memory, where locking differs from a file. Prints a JSON object of outcome counts.
"""

import json
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
directory = tempfile.mkdtemp()
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ["DATABASE_URL"] = f"sqlite:///{directory}/races.sqlite3"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import RefreshToken, User  # noqa: E402
from accounts.services import session_open  # noqa: E402

PASSWORD = "a-Long-passphrase-1"
REFRESH = "mutation($t: String) { refreshToken(refreshToken: $t) { token } }"
LOGIN = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"


def race(body: dict, copies: int, outcomes: Counter) -> None:
    barrier = threading.Barrier(copies)

    def run():
        try:
            client = Client(HTTP_HOST="localhost")
            barrier.wait(timeout=10)
            response = client.post("/graphql", json.dumps(body), "application/json")
            data = response.json()
            outcomes[data["errors"][0]["extensions"]["code"] if "errors" in data else "OK"] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


call_command("migrate", verbosity=0)
refresh, login = Counter(), Counter()
for trial in range(5):
    user = User.objects.create_user(username=f"racer{trial}", email=f"racer{trial}@example.com", password=PASSWORD)
    tokens = session_open(user=user)
    race({"query": REFRESH, "variables": {"t": tokens.refresh_token}}, 4, refresh)
    race({"query": LOGIN, "variables": {"e": user.email, "p": PASSWORD}}, 4, login)
unused = RefreshToken.objects.filter(used_at__isnull=True).count()
outcome = {"refresh": refresh, "login": login, "unused_refresh_tokens": unused}
sys.stdout.write(json.dumps(outcome) + "\n")
