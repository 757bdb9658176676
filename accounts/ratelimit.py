"""Fixed-window attempt counters in the shared cache (Redis in production).

Every counted attempt increments before the work it guards, so parallel requests,
aliases and batches cannot multiply attempts: each execution pays its own increment.
"""

import hashlib
import logging
import time

from django.core.cache import cache

from accounts.exceptions import RateLimited

logger = logging.getLogger(__name__)


def rate_limit_hit(*, scope: str, key: str, rate: tuple[int, int] | None) -> None:
    """Count one attempt of `scope` by `key`; raise RateLimited once the window's quota is spent.

    `rate` is (attempts, window seconds); None disables the limit. If the cache is
    unreachable the attempt is let through and logged: locking every user out because a
    cache node is down would turn a partial outage into a full one.
    """
    if rate is None:
        return
    limit, window = rate
    now = int(time.time())
    window_start = now - now % window
    # Hashed, so that emails and addresses never appear in cache keys.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_key = f"rl:{scope}:{digest}:{window_start}"
    try:
        cache.add(cache_key, 0, timeout=window + 1)
        count = cache.incr(cache_key)
    except ValueError:
        # The key expired between add and incr: this attempt opens a fresh window.
        cache.set(cache_key, 1, timeout=window + 1)
        count = 1
    except Exception:  # a cache outage must not become an authentication outage
        logger.exception("Rate limiter unavailable for scope %s; attempt allowed", scope)
        return
    if count > limit:
        # `first`: the refusal that spent the quota; later ones in the window are repeats.
        raise RateLimited(retry_after=window_start + window - now, first=count == limit + 1)
