"""The address guard: a URL from a tool argument may lead only to the public internet.

`UrlGuard.check` parses a URL with the same parser the HTTP client uses (no parser
differential), resolves its host and refuses it when *any* address is internal: loopback,
private, link-local, carrier-grade NAT, multicast, reserved, unspecified, and the same
addresses embedded in IPv4-mapped/compatible, 6to4 and NAT64 IPv6 forms. Hosts written as
literal addresses are read in every notation a system resolver accepts, the legacy IPv4 ones
(`2130706433`, `0x7f.1`, `0177.0.0.1`) included.

A download must then connect to the very address that was checked: `pinned_request` puts the
IP into the URL and keeps the name in the Host header and the TLS SNI, so a DNS answer that
changes between check and connect (DNS rebinding) cannot send us inward.

Messages show URLs through `safe_url`: without user info or query string, since those are
where tokens live.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import unquote, urlsplit

import anyio
import httpx2

from mj_mcp.errors import ImageInputError, ImageRejectedError

__all__ = [
    "MAX_URL_LENGTH",
    "RESOLVE_TIMEOUT",
    "CheckedUrl",
    "IPAddress",
    "Resolver",
    "UrlGuard",
    "default_resolver",
    "internal_reason",
    "literal_ip",
    "pinned_request",
    "safe_url",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]
"""Returns the IP addresses (as text) a host name resolves to; raises OSError when it does not."""

RESOLVE_TIMEOUT: Final = 10.0
MAX_URL_LENGTH: Final = 8192

_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_V4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_LEGACY_V4_RE: Final = re.compile(r"[0-9a-fA-FxX.]+")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    # `int(address) > 1` leaves out `::` and `::1`, which are judged as IPv6 addresses.
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def internal_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public internet address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            reason = internal_reason(embedded)
            return f"embeds {embedded}, {reason}" if reason else None
        if address in _NAT64_LOCAL:
            return "local NAT64"
        if address.is_site_local:
            return "site-local"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally reachable"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any notation: ipaddress's, or the legacy IPv4 forms
    (`2130706433`, `0x7f.1`, `0177.0.0.1`) that system resolvers also accept."""
    bare = host.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(unquote(bare))
    candidate = bare.rstrip(".")
    if candidate[:1].isdigit() and _LEGACY_V4_RE.fullmatch(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


async def default_resolver(host: str) -> list[str]:
    """Resolve with the system resolver (in a worker thread, via anyio)."""
    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def safe_url(url: str | httpx2.URL) -> str:
    """A URL fit for a message: no user info, no query or fragment, not too long."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        shown = f"{parts.scheme}://{host}{port}{parts.path}"
        if parts.query or parts.fragment:
            shown += "?…"
    except ValueError:
        shown = "(unparseable URL)"
    return shown if len(shown) <= 120 else shown[:117] + "…"


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed `UrlGuard.check`, with the public addresses its host resolved to."""

    url: httpx2.URL
    addresses: list[IPAddress]


class UrlGuard:
    """Checks URLs against internal addresses; `resolver` maps a host name to its addresses
    (tests inject a fake)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver: Resolver = resolver or default_resolver

    async def check(self, raw: str | httpx2.URL, *, what: str, instead: str, unresolved_ok: bool = False) -> CheckedUrl:
        """Refuse `raw` unless it is http(s), carries no credentials and every address its host
        resolves to is public.

        `what` names the URL in messages ("image URL"); `instead` is the hint of a refused URL,
        saying what to pass in its place. With `unresolved_ok`, a host that does not resolve
        passes with no addresses (for a URL that is only passed on, never fetched here).
        Raises ImageRejectedError for a refused URL, ImageInputError for one that cannot be used.
        """
        shown = safe_url(raw)
        if isinstance(raw, str) and len(raw) > MAX_URL_LENGTH:
            raise ImageInputError(f"The {what} is longer than {MAX_URL_LENGTH} characters.")
        try:
            url = raw if isinstance(raw, httpx2.URL) else httpx2.URL(raw.strip())
            scheme, host, userinfo = url.scheme, url.host, url.userinfo
            raw_host = url.raw_host.decode("ascii")
        except Exception:
            # httpx2.InvalidURL, and UnicodeError/ValueError from IDNA on odd host names.
            raise ImageInputError(f"The {what} {shown} is not a valid URL.", hint="Pass a full http(s) URL.") from None
        if scheme not in ("http", "https"):
            raise ImageRejectedError(
                f"The {what} {shown} uses {scheme or 'no'} scheme; only http and https URLs are accepted.",
                hint=instead,
            )
        if userinfo:
            raise ImageRejectedError(
                f"The {what} {shown} contains a user name or password; URLs with credentials are "
                "refused so that they are not sent anywhere.",
                hint=f"Pass a URL that needs no login. {instead}",
            )
        if not host:
            raise ImageInputError(f"The {what} {shown} has no host.", hint="Pass a full http(s) URL.")
        addresses = await self._addresses(
            host, raw_host, shown, what=what, instead=instead, unresolved_ok=unresolved_ok
        )
        for address in addresses:
            reason = internal_reason(address)
            if reason is not None:
                raise ImageRejectedError(
                    f"The {what} {shown} points to an internal address ({address}, {reason}); only "
                    "public http(s) URLs are accepted.",
                    hint=instead,
                )
        return CheckedUrl(url=url, addresses=addresses)

    async def _addresses(
        self, host: str, raw_host: str, shown: str, *, what: str, instead: str, unresolved_ok: bool
    ) -> list[IPAddress]:
        literal = literal_ip(host)
        if literal is not None:
            return [literal]
        name = raw_host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            # Never asked of the resolver: it may answer anything for these names.
            raise ImageRejectedError(
                f"The {what} {shown} points to this machine (localhost); only public http(s) URLs are accepted.",
                hint=instead,
            )
        try:
            return await self._resolve(raw_host, shown, what=what, instead=instead)
        except ImageRejectedError:
            raise
        except ImageInputError:
            if not unresolved_ok:
                raise
            return []

    async def _resolve(self, host: str, shown: str, *, what: str, instead: str) -> list[IPAddress]:
        not_found = ImageInputError(
            f"The host of the {what} {shown} could not be resolved.", hint=f"Check the URL. {instead}"
        )
        try:
            with anyio.fail_after(RESOLVE_TIMEOUT):
                answers = await self._resolver(host)
        except (OSError, UnicodeError, ValueError, TimeoutError):
            raise not_found from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer)
            except ValueError:
                raise ImageRejectedError(
                    f"The host of the {what} {shown} resolved to an address that cannot be checked.",
                    hint=instead,
                ) from None
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise not_found
        return addresses


def pinned_request(
    checked: CheckedUrl, address: IPAddress, *, headers: Mapping[str, str], timeout: httpx2.Timeout
) -> httpx2.Request:
    """A GET for `checked.url` that connects to `address` (one of the checked ones) without
    resolving the name again; the Host header and the TLS SNI keep the name."""
    url = checked.url
    return httpx2.Request(
        "GET",
        url.copy_with(host=str(address)),
        headers={
            "Host": url.netloc.decode("ascii"),
            **headers,
            # Pinned requests for different names can share an IP; never reuse one connection
            # (and its TLS name) for another host.
            "Connection": "close",
        },
        extensions={"timeout": timeout.as_dict(), "sni_hostname": url.raw_host.decode("ascii")},
    )
