"""Apollo Client 4 and Relay (relay-runtime), in Node, against a production server.

The server is the shipped one (gunicorn, config/gunicorn.py, production settings), its
database a scratch one (gh_e2e_<pid>_<hex>, created and dropped here) on the Postgres
DATABASE_URL points at, else a SQLite file, so the two CI passes serve it on both; its
access tokens live 4 seconds, so that one genuinely expires while the Apollo client
holds it; it is spoken to as a TLS-terminating proxy would (X-Forwarded-Proto). The
clients are the project's tests in e2e/ (`npm ci` there first), run with `node --test`:

- e2e/apollo.test.js: register, tokenAuth, me, the token expires, the error link sees
  TOKEN_EXPIRED, refreshes and retries once, logoutAll, then TOKEN_REVOKED; every
  operation goes through the persisted-query link (NOT_FOUND, the text, then the hash alone).
- e2e/relay.test.js: the viewer, the same user through node(id:), and every seeded account
  through `users` pages as staff, none repeated and none missing.
- e2e/codegen.test.js (needs no server): GraphQL Code Generator's TypeScript output from
  schema.graphql is the committed one, and `tsc --noEmit` accepts its use with Apollo Client.

This module seeds the accounts, runs Node, requires every Node test to have passed, and
then checks on the server's own database what the Apollo script did.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import ROOT, free_port, live_database_url, manage, missing, production_server

E2E = ROOT / "e2e"
NODE_DEADLINE = 180
ACCESS_TOKEN_LIFETIME = 4
SEED_PREFIX = "e2e-seed-"
SEEDED_USERS = 25
# The Node tests, by name: each must be reported as passed (a run that found no test passes too).
NODE_TESTS = {
    "apollo: register, sign in, refresh on TOKEN_EXPIRED once, sign out everywhere",
    "relay: the viewer, the same user through node(id:), every seeded user through users pages",
    "relay: the committed artifacts are what relay-compiler makes of the documents and schema.graphql",
    "codegen: the committed typed/__generated__/ is what codegen makes of typed/*.graphql and schema.graphql",
    "codegen: typed/example.ts type-checks with Apollo Client and the generated TypedDocumentNodes",
}


def django_shell(env: dict, code: str) -> dict:
    """Run `code` in `manage.py shell` with the server's settings; it prints one JSON object."""
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


SEED = f"""
import json
from accounts.models import User
staff = User.objects.create_user("{SEED_PREFIX}staff", "{SEED_PREFIX}staff@example.com", PASSWORD, is_staff=True)
# Accounts that never sign in: an unusable password, so that seeding costs no hashing.
names = [f"{SEED_PREFIX}{{n:02d}}" for n in range({SEEDED_USERS})]
users = [User.objects.create_user(name, f"{{name}}@example.com") for name in names]
print(json.dumps({{"usernames": [staff.username] + [user.username for user in users]}}))
"""

AFTER = """
import json
from accounts.models import Session, User
user = User.objects.get(username=USERNAME)
sessions = Session.objects.filter(user=user)
ended = sorted(session.revoked_reason for session in sessions)
print(json.dumps({"ended": ended, "live": sessions.filter(revoked_at__isnull=True).count()}))
"""


@pytest.fixture(scope="module")
def node():
    """The path of `node`, with e2e/'s packages installed (`npm ci` in e2e/)."""
    executable = shutil.which("node")
    if executable is None:
        missing("node is not installed")
    if not (E2E / "node_modules").is_dir():
        missing("e2e/node_modules is missing: run `cd e2e && npm ci`")
    return executable


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, dict, Path]]:
    """(base URL, environment, log file) of a production server of this module's own."""
    tmp = tmp_path_factory.mktemp("e2e-live")
    with contextlib.ExitStack() as stack:
        served = production_server(
            tmp,
            DATABASE_URL=live_database_url(stack, tmp, "gh_e2e"),
            JWT_ACCESS_TOKEN_LIFETIME=str(ACCESS_TOKEN_LIFETIME),
            # register's verification mail goes nowhere, at once: nothing listens on this port.
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(free_port()),
        )
        base, env = stack.enter_context(served)
        yield base, env, tmp / "server.log"


def test_apollo_client_and_relay_drive_a_production_server(node, server):
    base, env, server_log = server
    # given: a staff account and plain accounts, all named with one prefix
    password = secrets.token_urlsafe(18)
    seeded = django_shell(env, f"PASSWORD = {password!r}\n{SEED}")["usernames"]
    assert len(seeded) == SEEDED_USERS + 1
    apollo_username = f"apollo-{secrets.token_hex(4)}"

    # when: the Node tests run against the server
    node_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "GATEHOUSE_URL": f"{base}/graphql",
        "GATEHOUSE_ACCESS_TOKEN_LIFETIME": str(ACCESS_TOKEN_LIFETIME),
        "GATEHOUSE_APOLLO_USERNAME": apollo_username,
        "GATEHOUSE_STAFF_USERNAME": f"{SEED_PREFIX}staff",
        "GATEHOUSE_STAFF_PASSWORD": password,
        "GATEHOUSE_SEED_PREFIX": SEED_PREFIX,
        "GATEHOUSE_SEEDED_USERNAMES": json.dumps(seeded),
        "NODE_OPTIONS": "",
    }
    done = subprocess.run(  # noqa: S603 - the project's own tests
        [node, "--test", "--test-reporter=tap"],
        cwd=E2E, env=node_env, capture_output=True, timeout=NODE_DEADLINE, check=False,
    )  # fmt: skip
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    failure = f"node --test:\n{output[-12000:]}\n--- server log ---\n{server_log.read_text()[-3000:]}"

    # then: every Node test ran and passed
    assert done.returncode == 0, failure
    passed = set(re.findall(r"^ok \d+ - (.+?)\s*$", output, re.MULTILINE))
    assert passed >= NODE_TESTS, failure
    assert re.search(r"^# fail 0$", output, re.MULTILINE), failure
    assert re.search(r"^# skipped 0$", output, re.MULTILINE), failure

    # and the server agrees with the Apollo script: two sessions (register, tokenAuth), both ended by logoutAll
    state = django_shell(env, f"USERNAME = {apollo_username!r}\n{AFTER}")
    assert state == {"ended": ["logout_all", "logout_all"], "live": 0}
