"""Does an answer's timing tell whether an address has an account? Prints figures.

Sends `sendPasswordResetEmail` and `resendActivationEmail` for an address that has an
account and one that has none, interleaved, through Django's full request stack
(in-process, the test settings with rate limits off and EMAIL_ASYNC as in production),
and prints the median time of each and their ratio. Usage, from the repository root:

    .venv/bin/python bench/enumeration.py            # SQLite in memory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse_bench .venv/bin/python bench/enumeration.py
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "300"))
MUTATIONS = {
    "sendPasswordResetEmail": "mutation($e: String!) { sendPasswordResetEmail(email: $e) { success } }",
    "resendActivationEmail": "mutation($e: String!) { resendActivationEmail(email: $e) { success } }",
}


def main() -> None:
    from django.core import mail
    from django.test.runner import DiscoverRunner

    from accounts.mail import mail_wait
    from accounts.models import User

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A file, not memory: the background thread that sends the mail has its own connection.
        settings.DATABASES["default"]["TEST"]["NAME"] = str(Path(tempfile.mkdtemp()) / "enumeration.sqlite3")
    setup_test_environment()
    runner = DiscoverRunner(verbosity=0)
    databases = runner.setup_databases()
    try:
        User.objects.create_user(username="known", email="known@example.com", password="a-Long-passphrase-1")  # noqa: S106
        client = Client(HTTP_HOST="localhost")
        with override_settings(GATEHOUSE={**settings.GATEHOUSE, "EMAIL_ASYNC": True}):
            for name, query in MUTATIONS.items():
                timings = {"known@example.com": [], "nobody@example.com": []}
                for _ in range(20):  # warm up
                    for email in timings:
                        client.post(
                            "/graphql", json.dumps({"query": query, "variables": {"e": email}}), "application/json"
                        )
                for _ in range(ROUNDS):
                    for email, samples in timings.items():
                        body = json.dumps({"query": query, "variables": {"e": email}})
                        started = time.perf_counter()
                        response = client.post("/graphql", body, "application/json")
                        samples.append(time.perf_counter() - started)
                        if response.json() != {"data": {name: {"success": True}}}:
                            raise SystemExit(f"unexpected answer: {response.content[:200]!r}")
                mail_wait()
                sent = len(mail.outbox)
                to_known = sum(message.to == ["known@example.com"] for message in mail.outbox)
                mail.outbox.clear()
                known, unknown = (statistics.median(samples) * 1000 for samples in timings.values())
                sys.stdout.write(
                    f"{name}: median known {known:.3f} ms, unknown {unknown:.3f} ms, "
                    f"ratio known/unknown {known / unknown:.2f} ({ROUNDS} interleaved pairs, "
                    f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}; {sent} mails sent, "
                    f"{to_known} of them to the known address)\n"
                )
    finally:
        runner.teardown_databases(databases)
        teardown_test_environment()


if __name__ == "__main__":
    main()
