"""Facts about the client behind a request, read without trusting what it may forge."""

import ipaddress

from django.conf import settings

USER_AGENT_MAX_LENGTH = 512


def client_address(request) -> str:
    """Return the client's IP address as seen through exactly TRUSTED_PROXY_COUNT proxies.

    Each trusted proxy appends the address it received the request from to
    X-Forwarded-For, so the client is the entry that many places from the right. Entries
    further left were written by the client itself and are never believed. With no
    trusted proxy (the default) the socket's peer address is the client.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.GATEHOUSE["TRUSTED_PROXY_COUNT"]
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            candidate = hops[-proxies]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def client_user_agent(request) -> str:
    """Return the User-Agent header, cut to a length fit for storage and logs."""
    return request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH]
