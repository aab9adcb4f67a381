"""One reading of an http(s) URL for the two places that call out: the webhook sender and the CLI
client. What is checked is what is connected to: the host, the port and the request target come
from this one parse, never from the raw string again."""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpTarget:
    scheme: str
    host: str
    """lower case, without brackets for IPv6"""
    port: int | None
    """as the URL names it; None: the scheme's (80 or 443)"""
    target: str
    """path and query, as sent in the request line"""

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A connection to exactly this host and port (not yet connected)."""
        connection_class = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return connection_class(self.host, self.port or (443 if self.scheme == "https" else 80), timeout=timeout)


class BadUrl(ValueError):
    """Why a URL is refused, as the end of a sentence that names it ("webhook must ...")."""


def parse_http_url(url: str) -> HttpTarget:
    """`url` read once; raises BadUrl for anything but printable ASCII http(s) without credentials."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise BadUrl("must be an http(s) URL of printable ASCII")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUrl("must be an http(s) URL")
    if "@" in parts.netloc:
        raise BadUrl("must not carry a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise BadUrl("must be an http(s) URL with a valid port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HttpTarget(parts.scheme, parts.hostname.lower(), port, target)
