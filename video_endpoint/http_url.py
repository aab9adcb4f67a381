"""One reading of an http(s) URL for the places that call out: the webhook sender, the output
uploads and the CLI client. What is checked is what is connected to: the host, the port and the
request target come from this one parse, never from the raw string again. `send` and
`send_with_retries` are the one way the server sends a body out."""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpTarget:
    scheme: str
    host: str
    """lower case, without brackets for IPv6"""
    port: int | None
    """as the URL names it; None: the scheme's (80 or 443)"""
    target: str
    """path and query, as sent in the request line"""

    @property
    def effective_port(self) -> int:
        """The port connected to: the URL's, else the scheme's default."""
        return self.port or (443 if self.scheme == "https" else 80)

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A connection to exactly this host and port (not yet connected)."""
        connection_class = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return connection_class(self.host, self.effective_port, timeout=timeout)

    def without_query(self) -> str:
        """The URL as an answer may show it: a presigned URL's query holds its credentials."""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}{self.target.split('?', 1)[0]}"


class BadUrl(ValueError):
    """Why a URL is refused, as the end of a sentence that names it ("webhook must ...")."""


def parse_http_url(url: str) -> HttpTarget:
    """`url` read once; raises BadUrl for anything but printable ASCII http(s) without credentials."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise BadUrl("must be an http(s) URL of printable ASCII")
    try:  # urlsplit and its host raise ValueError for malformed brackets ("http://[::1/")
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise BadUrl("must be an http(s) URL with a valid host") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise BadUrl("must be an http(s) URL")
    if "@" in parts.netloc:
        raise BadUrl("must not carry a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise BadUrl("must be an http(s) URL with a valid port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HttpTarget(parts.scheme, hostname.lower(), port, target)


def parse_allowed_url(url: str, hosts: tuple[str, ...], setting: str) -> HttpTarget:
    """As `parse_http_url`, and only on a host the operator listed in `setting`: `host:port` items
    that port, `host` items the scheme's default port (443, 80): the server calls no other address
    for a request."""
    target = parse_http_url(url)
    default_port = target.effective_port == (443 if target.scheme == "https" else 80)
    if not (target.host in hosts and default_port) and f"{target.host}:{target.effective_port}" not in hosts:
        raise BadUrl(f"host is not one this server sends to ({setting})")
    return target


class Deadline:
    """Cuts a connection when the whole exchange has taken `seconds` (a socket timeout only bounds
    each read or write: a peer trickling a byte at a time would never trip it)."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection, self.passed = connection, False
        self.timer = threading.Timer(seconds, self._cut)
        self.timer.daemon = True
        self.timer.start()

    def _cut(self) -> None:
        self.passed = True
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self.timer.cancel()


class NotSent(Exception):
    """The receiver was not reached: trying again cannot deliver twice."""


class TimedOut(OSError):
    """The body went out, and the whole attempt ran past its deadline."""


def send(target: HttpTarget, method: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One request, connecting, sending and the answer's status line and headers all within
    `timeout` seconds; its HTTP status. Raises NotSent when no connection was made, OSError
    (TimedOut past the deadline) when the body went out and no answer came. Redirects are not
    followed (they could lead anywhere)."""
    connection = target.connection(timeout)
    deadline = Deadline(connection, timeout)
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise (TimedOut() if deadline.passed else NotSent(str(exc))) from None
        try:
            connection.request(method, target.target, body=body, headers=headers)
            return connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            if deadline.passed:
                raise TimedOut() from None
            raise exc if isinstance(exc, OSError) else OSError(str(exc)) from None
    finally:
        deadline.cancel()
        connection.close()


def send_with_retries(attempt: Callable[[], int], what: str, attempts: int = 3, again_after_sent: bool = False,
                      pause_s: float = 1.0) -> tuple[bool, str]:
    """Call `attempt` (a `send`) until it answers 2xx: again when the receiver was not reached or
    answered 5xx, and after a body went out unanswered only if `again_after_sent` (a PUT may be
    repeated, a webhook's POST may not). Returns whether it was delivered and, if not, why."""
    reason = ""
    for number in range(1, attempts + 1):
        # the reason returned says what happened, never the system's words (errno or DNS text would
        # tell a client which ports of a listed host are open); the log keeps them
        try:
            status = attempt()
        except NotSent as exc:
            reason = "not reached"
            logger.info("%s: not reached: %s", what, exc)
        except OSError as exc:
            reason = "sent, no answer in time" if isinstance(exc, (TimedOut, TimeoutError)) else "sent, no answer"
            logger.info("%s: %s: %s", what, reason, exc)
            if not again_after_sent:
                logger.warning("%s: %s; not sent again", what, reason)
                return False, reason
        else:
            if 200 <= status < 300:
                return True, ""
            reason = f"HTTP {status}"
            if status < 500:  # a redirect (not followed) or a refusal: trying again changes nothing
                logger.warning("%s: %s; not sent again", what, reason)
                return False, reason
        logger.warning("%s: attempt %d: %s", what, number, reason)
        if number < attempts:
            time.sleep(min(pause_s * 2.0 ** (number - 1), 10.0))
    return False, reason
