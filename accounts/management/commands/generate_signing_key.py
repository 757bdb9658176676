"""`manage.py generate_signing_key --algorithm {RS256,ES256,EdDSA} --out PATH`: a new private signing key.

The key is written as an unencrypted PKCS #8 PEM file that only its owner may read (mode
0600, set as the file is created: it is never readable by others, not even for a moment)
and never over an existing file: overwriting the key in use would end every session's
access token at once and lose the key for good. `--public-out` also writes its public
half, which a later rotation lists in JWT_PREVIOUS_PUBLIC_KEY_FILES.

The command runs no system checks: it is how the key file that those checks look for
comes to exist.
"""

import os

from django.core.management.base import BaseCommand, CommandError

from accounts.keys import (
    ASYMMETRIC_ALGORITHMS,
    RSA_DEFAULT_BITS,
    generate_private_key,
    private_key_pem,
    public_jwk,
    public_key_pem,
)

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def write_new_file(path: str, data: bytes, mode: int) -> None:
    """Create `path` with exactly `mode` and write `data`; refuse if anything exists there.

    O_EXCL also refuses a symbolic link at `path`, even a dangling one: the key cannot be
    written through a link into some other file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CommandError(f"{path} already exists: refusing to overwrite it. Choose a new path.") from None
    except OSError as exc:
        raise CommandError(f"Cannot create {path}: {exc.strerror}.") from None
    try:
        # The umask may only have removed bits; set exactly the mode asked for.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        os.unlink(path)
        raise


class Command(BaseCommand):
    help = "Write a new private key for JWT_ALGORITHM=RS256, ES256 or EdDSA to a new file (mode 0600)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--algorithm", required=True, choices=ASYMMETRIC_ALGORITHMS, help="The JWT algorithm.")
        parser.add_argument("--out", required=True, help="Where to write the private key (a new file).")
        parser.add_argument("--public-out", help="Also write the public key here (a new file, mode 0644).")
        parser.add_argument(
            "--rsa-bits",
            type=int,
            default=RSA_DEFAULT_BITS,
            choices=(2048, 3072, 4096),
            help=f"RSA key size for RS256 (default {RSA_DEFAULT_BITS}).",
        )

    def handle(self, *args, algorithm, out, public_out=None, rsa_bits=RSA_DEFAULT_BITS, **options):
        if public_out and os.path.abspath(public_out) == os.path.abspath(out):
            raise CommandError("--public-out must differ from --out.")
        for path in (out, public_out):
            # Checked before anything is written: a refusal leaves no half-made pair behind.
            if path and os.path.lexists(path):
                raise CommandError(f"{path} already exists: refusing to overwrite it. Choose a new path.")
        key = generate_private_key(algorithm, rsa_bits=rsa_bits)
        write_new_file(out, private_key_pem(key), PRIVATE_MODE)
        if public_out:
            write_new_file(public_out, public_key_pem(key), PUBLIC_MODE)
        kid = public_jwk(key.public_key(), algorithm)["kid"]
        self.stdout.write(f"Wrote a new {algorithm} private key to {out} (mode 0600), kid {kid}.")
        if public_out:
            self.stdout.write(f"Wrote its public key to {public_out}.")
        self.stdout.write(f"Use it with JWT_ALGORITHM={algorithm} JWT_PRIVATE_KEY_FILE={out}")
