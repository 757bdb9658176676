"""SQLite (the default database) under concurrent writes: callers wait their turn, none gets a 500."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("sqlite_races.py")


def test_concurrent_refreshes_and_sign_ins_on_a_sqlite_file_wait_instead_of_failing():
    # given: five sessions, each refreshed by four clients at once, and five accounts each
    # signing in four times at once, on a SQLite file database (a subprocess of its own)
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # then: each refresh race has one winner and three harmless refusals, never an error
    assert outcome["refresh"] == {"OK": 5, "TOKEN_INVALID": 15}
    # and every sign-in succeeds: 5 rotated sessions + 20 new ones hold one live token each
    assert outcome["login"] == {"OK": 20}
    assert outcome["unused_refresh_tokens"] == 5 + 20
