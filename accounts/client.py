"""Facts about the client behind a request, read without trusting what it may forge."""

import ipaddress

from django.conf import settings


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


def address_key(address: str) -> str:
    """Return the rate-limit key of a client address: the address, or its /64 for IPv6.

    One IPv6 host usually holds a whole /64 and can rotate through it at will.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
