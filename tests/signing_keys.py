"""Key files and settings for the tests of asymmetric signing (accounts.keys).

Keys are generated once per algorithm and process (RSA at 2048 bits, the smallest
accepted: generation is the slow part) and written to each test's own directory.
"""

import itertools
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from django.conf import settings
from django.test import override_settings

from accounts.keys import generate_private_key, private_key_pem, public_key_pem

ALGORITHMS = ("RS256", "ES256", "EdDSA")
ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


@cache
def _pem_pair(algorithm: str, which: int) -> tuple[bytes, bytes]:
    key = generate_private_key(algorithm, rsa_bits=2048)
    return private_key_pem(key), public_key_pem(key)


def key_pair(directory: Path, algorithm: str, which: int = 0) -> tuple[Path, Path]:
    """Write key pair number `which` of `algorithm` into `directory`; return (private, public) paths."""
    private, public = _pem_pair(algorithm, which)
    n = next(_names)
    private_path = directory / f"{algorithm}-{which}-{n}.pem"
    public_path = directory / f"{algorithm}-{which}-{n}.pub.pem"
    private_path.write_bytes(private)
    private_path.chmod(0o600)
    public_path.write_bytes(public)
    return private_path, public_path


def signing_with(algorithm: str, private: Path | str = "", previous=(), **graphql_jwt):
    """Settings that sign with `algorithm` and `private`, still accepting the `previous` public keys."""
    return override_settings(
        GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_ALGORITHM": algorithm, **graphql_jwt},
        JWT_PRIVATE_KEY_FILE=str(private),
        JWT_PREVIOUS_PUBLIC_KEY_FILES=[str(path) for path in previous],
    )


def run_django(variables: dict, argv: list[str], *, settings_module="config.settings.production", wrapper=()):
    """Run `python *argv` at the repository root with only `variables` (and production's basics) set."""
    outer = ("DJANGO_", "JWT_", "DATABASE_", "REDIS_", "PUBLIC_URL", "GRAPHQL", "SECURE_", "STATIC_ROOT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(outer)}
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        DJANGO_SECRET_KEY="production-secret-key-" + "s" * 40,
        DJANGO_ALLOWED_HOSTS="api.example.com",
        DATABASE_URL="sqlite:///:memory:",
        **variables,
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and a fixed program
        [*wrapper, sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
