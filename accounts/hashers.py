"""Password hashers."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id at OWASP's recommended minimum: 19 MiB of memory, 2 passes, 1 lane.

    Django's defaults (100 MiB, 8 lanes) cost about 280 ms per login on a small server;
    these cost about 33 ms and still meet the OWASP Password Storage Cheat Sheet. The
    algorithm name stays `argon2`, so hashes made with other parameters keep verifying and
    are re-hashed at the next login.
    """

    time_cost = 2
    memory_cost = 19 * 1024
    parallelism = 1
