"""Password hashers."""

import base64
import hashlib

from django.contrib.auth.hashers import Argon2PasswordHasher
from django.utils.encoding import force_bytes
from nacl import bindings as sodium
from nacl.exceptions import InvalidkeyError
from nacl.pwhash import argon2id

SALT_BYTES = sodium.crypto_pwhash_SALTBYTES  # 16, the salt length Argon2's authors recommend
HASH_BYTES = 32


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id at one of OWASP's minimum configurations: 7 MiB of memory, 5 passes, 1 lane.

    The OWASP Password Storage Cheat Sheet lists five Argon2id settings that "provide an
    equal level of defense" and differ only in how they trade memory for passes: 46 MiB
    and t=1, 19 MiB and t=2, 12 MiB and t=3, 9 MiB and t=4, 7 MiB and t=5. On this class
    of server the smallest is the fastest (its memory stays in the processor's cache:
    bench/profile_login.py measured about 14 ms against 21 ms for 19 MiB, t=2) and it
    holds 12 MiB less per sign-in in flight. Django's defaults (100 MiB, 8 lanes) cost
    about 280 ms.

    Hashes are computed and checked by libsodium (PyNaCl), whose Argon2 picks the
    processor's vector instructions at run time; argon2-cffi's is about a third slower
    at these parameters. The stored form is the standard PHC string either library
    reads, and the algorithm name stays `argon2`, so hashes made with other parameters
    (or by Django's own Argon2 hasher) keep verifying and are re-hashed at the next login.
    A sign-in for an unknown account hashes the password given (see
    accounts.services.signin): encoding and checking cost the same here, as they must.
    """

    time_cost = 5
    memory_cost = 7 * 1024  # KiB
    parallelism = 1

    def encode(self, password, salt):
        self._check_encode_args(password, salt)
        # libsodium takes a salt of exactly 16 bytes; Django's is 22 random characters
        # (131 bits), so the bytes are derived from it: 128 bits, and the same salt
        # string always gives the same hash.
        salt_bytes = hashlib.blake2b(force_bytes(salt), digest_size=SALT_BYTES).digest()
        digest = sodium.crypto_pwhash_alg(
            HASH_BYTES,
            force_bytes(password),
            salt_bytes,
            self.time_cost,
            self.memory_cost * 1024,
            sodium.crypto_pwhash_ALG_ARGON2ID13,
        )
        return (
            f"{self.algorithm}$argon2id$v=19$m={self.memory_cost},t={self.time_cost},p={self.parallelism}"
            f"${_b64(salt_bytes)}${_b64(digest)}"
        )

    def verify(self, password, encoded):
        algorithm, rest = encoded.split("$", 1)
        assert algorithm == self.algorithm  # noqa: S101 (Django's own hashers assert this too)
        if not rest.startswith("argon2id$"):
            # Argon2i and Argon2d hashes, from other tools: argon2-cffi reads them.
            return super().verify(password, encoded)
        try:
            return argon2id.verify(("$" + rest).encode("ascii"), force_bytes(password))
        except (InvalidkeyError, ValueError, TypeError):
            # A wrong password, or a stored hash libsodium cannot read (refused, never
            # accepted).
            return False

    def must_update(self, encoded):
        # Django's check would also ask for a 22-character salt, counted as 62-letter
        # text; a salt of 16 random bytes holds 128 bits, which is what it asks for.
        params = self.decode(encoded)["params"]
        return (
            params.type.name != "ID"
            or (params.memory_cost, params.time_cost, params.parallelism) != self._target()
            or params.salt_len < SALT_BYTES
            or params.hash_len != HASH_BYTES
        )

    def _target(self):
        return (self.memory_cost, self.time_cost, self.parallelism)


def _b64(raw: bytes) -> str:
    # The PHC string format: standard base64 without padding.
    return base64.b64encode(raw).decode("ascii").rstrip("=")
