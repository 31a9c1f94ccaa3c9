"""URLs as Wharf's HTTP reader sees them: their origin (where a credential may go) and
how messages quote them (never a query or userinfo, which may hold a token)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL's path is quoted in messages up to this many characters.
_SHOWN_PATH = 200


@dataclass(frozen=True)
class Origin:
    """A URL's scheme, host and port (RFC 6454): where a credential may be sent."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) ``url``, or None when it has none or when urllib3 (which
    connects) and ``urllib.parse`` read its host differently (``http://a\\@b/``)."""
    try:
        parsed, split = parse_url(url), urlsplit(url)
        split_port = split.port
    except (LocationParseError, ValueError):
        return None
    scheme = (parsed.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS or not parsed.host:
        return None
    host = parsed.host.lower().strip("[]")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    if (split.hostname or "") != host or (split_port or _DEFAULT_PORTS[scheme]) != port:
        return None
    return Origin(scheme, host, port)


def shown(url: str) -> str:
    """``url`` as messages quote it: origin and path, never its query or userinfo (a next
    link's query may hold a token)."""
    origin = origin_of(url)
    if origin is None:
        return "a URL that is not http(s)://host[:port]/..."
    path = urlsplit(url).path
    return f"{origin}{path if len(path) <= _SHOWN_PATH else path[:_SHOWN_PATH] + '...'}"
