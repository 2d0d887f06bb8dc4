"""Storage URLs that read one way only: refused before anything connects when parsers disagree.

SQLAlchemy's URL parser ends the password at the first `@` (its pattern is `user:[^@]*@`), the
RFC 3986 reading (urllib, psql, most people) ends the user info at the first `/`, `?` or `#` and
allows no `@` in it, and a mask that hides "everything up to the last `@`" disagrees with both. A
password holding one of these characters unencoded (`postgresql://bob:S3cr@t/p@127.0.0.1/db`)
therefore sends the driver to a host made of a piece of the password (a DNS lookup of `t`) and
the error message quotes that piece. `url_problem` finds such URLs from their text alone (no
parser, no lookup), and `check_storage_url` refuses them, printing no part of the URL after its
scheme. What passes reads the same in SQLAlchemy and RFC 3986; see docs/reliability.md (Secrets).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from space.errors import ConfigError

_SHAPE = re.compile(r"^[a-zA-Z0-9+]+://")
# RFC 3986 userinfo: unreserved, percent-encoded, sub-delims and ":"
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*")
# a secret query value: unreserved and percent-encoded, plus sub-delims that neither split the
# query ("&"), turn into a space ("+") nor move the parse ("@", "/", "?", "#")
_QUERY_SECRET = re.compile(r"(?:[A-Za-z0-9\-._~!$'()*,;=:]|%[0-9A-Fa-f]{2})*")
_SECRET_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
ENCODE_HINT = (
    "percent-encode the user name and password "
    "(urllib.parse.quote(password, safe=''): '@' is %40, '/' is %2F, '?' is %3F, "
    "'#' is %23)"
)


def url_problem(url: str) -> str | None:
    """Why `url` reads differently to SQLAlchemy and to RFC 3986, in words that quote no part of
    it; None when it reads one way (or has no `://`: the shape check's business)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, after = rest[:cut], rest[cut:]
    # with a host part (anything but a path right after "://": sqlite:///x, postgresql:///db?host=)
    # every "@" must be the one that ends the user info; SQLAlchemy would end it at another
    if not rest.startswith("/") and rest.count("@") > (1 if "@" in authority else 0):
        return (
            "it has an '@' other than the one that ends the user name and password (one of "
            "them, or a query value, holds '@', '/', '?' or '#' unencoded)"
        )
    userinfo = authority.rpartition("@")[0] if "@" in authority else ""
    if not _USERINFO.fullmatch(userinfo):
        return (
            "its user name or password holds a character that must be percent-encoded "
            "(a space, '%' not followed by two hex digits, a non-ASCII letter, '[' ...)"
        )
    query = after.partition("?")[2] if "?" in after else ""
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if _SECRET_KEY.search(unquote(key)) and not _QUERY_SECRET.fullmatch(value):
            # the key is not shown either: with an unencoded "&" in a password it may be a piece
            return (
                "a password query parameter (password=, sslpassword=, ...) holds a "
                "character that must be percent-encoded ('@', '/', '?', '#', '+', a space, "
                "a non-ASCII letter ...)"
            )
    return None


def scheme_only(url: str) -> str:
    """`url`'s scheme and `***`: all that is safe to show of a URL that cannot be read."""
    scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url or "")
    return (scheme.group(0) if scheme else "") + "***"


def check_storage_url(url: object, source: str, field: str) -> str:
    """`url` when it is an SQLAlchemy URL that reads one way; else a ConfigError naming `field`
    (`--storage`, or a study file's `storage`) that shows nothing of it after the scheme."""
    if not isinstance(url, str) or not _SHAPE.match(url):
        from search.storage import mask_url  # mask_url itself uses url_problem

        shown = mask_url(url) if isinstance(url, str) else repr(url)  # never echo a password
        raise ConfigError(
            f"must be an SQLAlchemy URL such as sqlite:///runs/x.db (got {shown})",
            source=source,
            field=field,
        )
    problem = url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"the storage URL {scheme_only(url)} cannot be read one way only: "
            f"{problem}; {ENCODE_HINT}",
            source=source,
            field=field,
        )
    return url
