"""Fetching and parsing RSS and Atom feeds. Pure: no database reads or writes.

fetch() is aimed at addresses staff type in, served by machines engage does not control,
so it treats the URL, every redirect and every byte of every answer as hostile:

- only http and https; URLs carrying a user name or password are refused;
- each host is resolved once, every address it resolves to must be public unless the host
  is listed in ENGAGE_FEED_ALLOWED_HOSTS, and the connection goes to the address that was
  checked (the Host header and the TLS server name carry the name), so a DNS answer that
  changes between the check and the connection cannot reach an internal address;
- redirects are followed by hand, each hop checked the same way, at most
  ENGAGE_FEED_MAX_REDIRECTS of them;
- connecting and each read wait at most ENGAGE_FEED_TIMEOUT_SECONDS, and the whole fetch,
  redirects included, at most three times that: a watchdog shuts the socket down when the
  time is up, so a server that trickles its headers or body cannot hold the job;
- the body stops at ENGAGE_FEED_MAX_BYTES, counted after gzip decoding.

Every failure becomes a FeedError whose message is shown to staff on the sources page.
"""

import hashlib
import html
import http
import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urljoin, urlsplit
from xml.parsers import expat

import feedparser
import nh3
import urllib3
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from feedparser.encodings import convert_to_utf8
from urllib3.util.ssl_match_hostname import CertificateError

from engage import analysis
from engage.markup import external_url

USER_AGENT = "engage-feed-reader/1.0"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
# The whole fetch, redirects included, may take this many times the timeout setting.
DEADLINE_FACTOR = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_ENTRIES = 1000
READ_CHUNK = 64 * 1024

# Limits of the columns these values end up in (Source.etag, Source.last_modified,
# Conversation.external_id, Contact.handle/name, the URL fields): a longer value is
# dropped or replaced rather than failing the save.
MAX_ETAG = 500
MAX_LAST_MODIFIED = 100
MAX_EXTERNAL_ID = 255
MAX_NAME = 200
MAX_URL = 1000

THREAD_NS = "http://purl.org/syndication/thread/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
RSS1_NS = "http://purl.org/rss/1.0/"
# IPv6 addresses that a NAT64 gateway turns into the IPv4 address in their last 32 bits.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


class FeedError(Exception):
    """What went wrong, in a sentence a staff member understands (shown on the sources
    page), e.g. "Refused: 127.0.0.1 is a loopback address (add the host to
    ENGAGE_FEED_ALLOWED_HOSTS to allow it)."."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)


@dataclass(frozen=True)
class Fetched:
    not_modified: bool  # the server answered 304
    body: bytes  # b"" when not_modified
    etag: str  # from the response ("" if none); the old one on 304
    last_modified: str
    url: str  # the final URL after redirects


# Fetching ----------------------------------------------------------------------------


def fetch(url: str, *, etag: str = "", last_modified: str = "") -> Fetched:
    """GET a feed, following redirects, with a conditional request when etag or
    last_modified are given. Returns the body (or not_modified on 304); raises FeedError
    for anything else, network failures included."""
    timeout = float(settings.ENGAGE_FEED_TIMEOUT_SECONDS)
    max_bytes = int(settings.ENGAGE_FEED_MAX_BYTES)
    max_redirects = int(settings.ENGAGE_FEED_MAX_REDIRECTS)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip, deflate",
    }
    if etag := _header_value(etag, MAX_ETAG):
        headers["If-None-Match"] = etag
    if last_modified := _header_value(last_modified, MAX_LAST_MODIFIED):
        headers["If-Modified-Since"] = last_modified

    deadline = _Deadline(timeout * DEADLINE_FACTOR)
    current = url.strip()
    try:
        for hop in range(max_redirects + 1):
            target = _target(current, redirected=hop > 0)
            with _exchange(target, headers, deadline=deadline, timeout=timeout) as response:
                status = response.status
                if status in REDIRECT_STATUSES:
                    location = (response.headers.get("Location") or "").strip()
                    if not location:
                        raise FeedError(
                            _("The feed answered %(status)s without saying where to go.")
                            % {"status": _status_text(status)}
                        )
                    current = _redirect_target(current, location)
                    continue
                new_etag = _header_value(response.headers.get("ETag", ""), MAX_ETAG)
                new_modified = _header_value(
                    response.headers.get("Last-Modified", ""), MAX_LAST_MODIFIED
                )
                if status == 304:
                    return Fetched(
                        not_modified=True,
                        body=b"",
                        etag=new_etag or etag,
                        last_modified=new_modified or last_modified,
                        url=current,
                    )
                if not 200 <= status < 300:
                    raise FeedError(
                        _("The feed answered %(status)s.") % {"status": _status_text(status)}
                    )
                body = _read_body(response, max_bytes=max_bytes, deadline=deadline)
                return Fetched(
                    not_modified=False,
                    body=body,
                    etag=new_etag,
                    last_modified=new_modified,
                    url=current,
                )
    finally:
        deadline.close()
    raise FeedError(
        ngettext(
            "The feed redirected more than %(count)d time; giving up.",
            "The feed redirected more than %(count)d times; giving up.",
            max_redirects,
        )
        % {"count": max_redirects}
    )


def _redirect_target(current: str, location: str) -> str:
    try:
        return urljoin(current, location)
    except ValueError:
        raise FeedError(
            _("The feed redirected to %(url)s, which is not a valid web address.")
            % {"url": _shorten(location, 200)}
        ) from None


@dataclass(frozen=True)
class _Target:
    """One URL, checked: where to connect and what to send."""

    scheme: str
    host: str  # as written in the URL (lowercase, no brackets); for messages
    ascii_host: str  # IDNA-encoded: the Host header and the TLS server name
    port: int
    request_target: str  # path and query
    addresses: tuple[str, ...]  # resolved and checked

    @property
    def host_header(self) -> str:
        host = f"[{self.ascii_host}]" if ":" in self.ascii_host else self.ascii_host
        default_port = 443 if self.scheme == "https" else 80
        return host if self.port == default_port else f"{host}:{self.port}"


def _target(url: str, *, redirected: bool) -> _Target:
    """Check the URL and resolve its host; raises FeedError naming what was refused."""
    try:
        return _checked_target(url)
    except FeedError as error:
        if not redirected:
            raise
        raise FeedError(
            _("The feed redirected to %(url)s. %(problem)s")
            % {"url": _shorten(url, 200), "problem": error.message}
        ) from None


def _checked_target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FeedError(
            _("“%(url)s” is not a valid web address.") % {"url": _shorten(url, 200)}
        ) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise FeedError(
            _("“%(url)s” is not a web address: it should start with https:// or http://.")
            % {"url": _shorten(url, 200)}
        )
    if scheme not in {"http", "https"}:
        raise FeedError(
            _("Only http and https feeds can be fetched, not %(scheme)s.") % {"scheme": scheme}
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FeedError(_("The address %(url)s has no host name.") % {"url": _shorten(url, 200)})
    if parts.username is not None or parts.password is not None:
        raise FeedError(_("Addresses with a user name or password are not supported."))
    try:
        ascii_host = host if _is_ip(host) else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise FeedError(_("“%(host)s” is not a valid host name.") % {"host": host}) from None
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, ascii_host, port)
    if not _is_allowed(host, ascii_host):
        for address in addresses:
            if problem := _address_problem(address):
                raise FeedError(_refusal(host, address, problem))
    path = parts.path or "/"
    request_target = path + (f"?{parts.query}" if parts.query else "")
    # Percent-encode anything that may not appear in a request line (spaces, non-ASCII,
    # control characters), keeping what is already encoded.
    request_target = quote(request_target, safe="!#$%&'()*+,/:;=?@[]~")
    return _Target(
        scheme=scheme,
        host=host,
        ascii_host=ascii_host,
        port=port,
        request_target=request_target,
        addresses=addresses,
    )


def _resolve(host: str, ascii_host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(ascii_host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise FeedError(
            _("Could not find the host %(host)s (%(reason)s).") % {"host": host, "reason": reason}
        ) from None
    # A scope (fe80::1%eth0) is not part of the address for the checks below.
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FeedError(_("Could not find the host %(host)s.") % {"host": host})
    return addresses


def _normalise_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _is_allowed(host: str, ascii_host: str) -> bool:
    allowed = {_normalise_host(name) for name in settings.ENGAGE_FEED_ALLOWED_HOSTS}
    return _normalise_host(host) in allowed or _normalise_host(ascii_host) in allowed


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address_problem(address: str) -> str:
    """Why an address may not be fetched from ("" when it is public)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        # An IPv6 address that carries an IPv4 one is judged by the IPv4 one.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    if ip.is_unspecified:
        return _("an unspecified address")
    if ip.is_loopback:
        return _("a loopback address")
    if ip.is_link_local:
        return _("a link-local address, used by cloud metadata services")
    if ip.is_multicast:
        return _("a multicast address")
    if ip.is_private:
        return _("a private address")
    if ip.is_reserved:
        return _("a reserved address")
    if not ip.is_global:
        return _("not a public address")
    return ""


def _refusal(host: str, address: str, problem: str) -> str:
    if _normalise_host(host) == _normalise_host(address):
        return _(
            "Refused: %(address)s is %(problem)s (add the host to "
            "ENGAGE_FEED_ALLOWED_HOSTS to allow it)."
        ) % {"address": address, "problem": problem}
    return _(
        "Refused: %(host)s resolves to %(address)s, %(problem)s (add the host to "
        "ENGAGE_FEED_ALLOWED_HOSTS to allow it)."
    ) % {"host": host, "address": address, "problem": problem}


class _Deadline:
    """The time left for the whole fetch, and a watchdog per connection that shuts its
    socket down when the time is up. Per-read timeouts alone would let a server that sends
    one byte every few seconds keep a job busy for hours."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._closed = False
        self._cut = False

    def remaining(self) -> float:
        return self._ends - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._cut or self.remaining() <= 0

    def check(self) -> None:
        if self.expired:
            raise self.error()

    def error(self) -> FeedError:
        return FeedError(
            _("The feed took longer than %(seconds)s seconds to download; it was stopped.")
            % {"seconds": _seconds(self.seconds)}
        )

    def watch(self, sock: socket.socket) -> None:
        timer = threading.Timer(max(self.remaining(), 0), self._shut, args=(sock,))
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.append(timer)
        timer.start()

    def _shut(self, sock: socket.socket) -> None:
        # The lock keeps this from touching a socket after fetch() has finished with it.
        with self._lock:
            if self._closed:
                return
            self._cut = True
            # The plain socket's shutdown, also for TLS sockets: it wakes up a read blocked
            # in another thread without touching the TLS state. An error means it was closed.
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()


class _WatchedConnectionMixin:
    """Hands the socket to the fetch's deadline as soon as it is connected."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        self._deadline = deadline
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _HTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _pool(target: _Target, address: str, deadline: _Deadline) -> urllib3.HTTPConnectionPool:
    """A pool that connects to the checked address, never to the name again."""
    if target.scheme == "https":
        return _HTTPSPool(
            address,
            target.port,
            maxsize=1,
            retries=False,
            server_hostname=target.ascii_host,
            assert_hostname=target.ascii_host,
            cert_reqs="CERT_REQUIRED",
            deadline=deadline,
        )
    return _HTTPPool(address, target.port, maxsize=1, retries=False, deadline=deadline)


@contextmanager
def _exchange(
    target: _Target, headers: dict[str, str], *, deadline: _Deadline, timeout: float
) -> Iterator[urllib3.BaseHTTPResponse]:
    """Send the request to the first checked address that accepts a connection and yield
    the response unread; network errors inside the block become FeedErrors."""
    headers = {**headers, "Host": target.host_header}
    pool = response = None
    try:
        with _network_errors(target, deadline=deadline, timeout=timeout):
            for index, address in enumerate(target.addresses):
                deadline.check()
                wait = max(min(timeout, deadline.remaining()), 0.001)
                pool = _pool(target, address, deadline)
                try:
                    response = pool.urlopen(
                        "GET",
                        target.request_target,
                        headers=headers,
                        retries=False,
                        redirect=False,
                        preload_content=False,
                        decode_content=True,
                        timeout=urllib3.Timeout(connect=wait, read=wait),
                    )
                    break
                except urllib3.exceptions.NewConnectionError:
                    # Another address of the same host (IPv4 after IPv6) may answer.
                    pool.close()
                    if index == len(target.addresses) - 1:
                        raise
            yield response
    finally:
        if response is not None:
            # Close without draining: whatever the server still has to send is not read.
            response.close()
        if pool is not None:
            pool.close()


@contextmanager
def _network_errors(target: _Target, *, deadline: _Deadline, timeout: float) -> Iterator[None]:
    try:
        yield
    except FeedError:
        raise
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as error:
        if deadline.expired:
            raise deadline.error() from error
        raise FeedError(_network_message(error, target, timeout)) from error


def _network_message(error: Exception, target: _Target, timeout: float) -> str:
    host, seconds = target.host, _seconds(timeout)
    exceptions = urllib3.exceptions
    if isinstance(error, exceptions.NewConnectionError):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ConnectionRefusedError):
            return _("Could not connect to %(host)s: the connection was refused.") % {"host": host}
        reason = getattr(cause, "strerror", None) or _("the network refused the connection")
        return _("Could not connect to %(host)s (%(reason)s).") % {"host": host, "reason": reason}
    if isinstance(error, exceptions.ConnectTimeoutError):
        return _("%(host)s did not accept a connection within %(seconds)s seconds.") % {
            "host": host,
            "seconds": seconds,
        }
    if isinstance(error, exceptions.ReadTimeoutError | TimeoutError):
        return _("%(host)s did not answer within %(seconds)s seconds.") % {
            "host": host,
            "seconds": seconds,
        }
    if isinstance(error, exceptions.SSLError | ssl.SSLError):
        return _("The secure connection to %(host)s failed: %(reason)s.") % {
            "host": host,
            "reason": _tls_reason(error),
        }
    if isinstance(error, exceptions.DecodeError):
        return _("The feed from %(host)s was compressed in a way that could not be read.") % {
            "host": host
        }
    return _("The connection to %(host)s failed: %(reason)s.") % {
        "host": host,
        "reason": _shorten(_root_cause(error), 150),
    }


def _tls_reason(error: BaseException) -> str:
    detail = ""
    seen = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return _("its certificate could not be verified (%(detail)s)") % {
                "detail": seen.verify_message or seen.reason
            }
        if isinstance(seen, CertificateError):
            return _("its certificate is not valid for this host name")
        if isinstance(seen, ssl.SSLError) and seen.reason:
            detail = seen.reason.replace("_", " ").lower()
        seen = seen.__cause__ or seen.__context__
    return _("the TLS handshake failed (%(detail)s)") % {
        "detail": detail or _shorten(_root_cause(error), 100)
    }


def _root_cause(error: BaseException) -> str:
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return str(error) or type(error).__name__


def _read_body(response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: _Deadline) -> bytes:
    length = (response.headers.get("Content-Length") or "").strip()
    if length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    while True:
        deadline.check()
        # read1 returns what has arrived (at most READ_CHUNK bytes once decoded) instead of
        # waiting for a full chunk, so the size and the deadline are checked as it comes.
        chunk = response.read1(READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    # A watchdog cut looks like the end of the body to a close-delimited response.
    deadline.check()
    return b"".join(chunks)


def _too_large(max_bytes: int) -> FeedError:
    return FeedError(
        _("The feed is larger than %(size)s; it was not read.") % {"size": _size(max_bytes)}
    )


def _header_value(value: str, limit: int) -> str:
    """The value when it can travel in (and be stored from) a header, else ""."""
    value = (value or "").strip()
    if len(value) > limit or not value.isprintable():
        return ""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return ""
    return value


def _status_text(status: int) -> str:
    # The standard phrase, not the server's own reason text.
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _seconds(value: float) -> str:
    return f"{value:g}"


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{round(value / (1024 * 1024), 1):g} MB"
    if value >= 1024:
        return f"{round(value / 1024, 1):g} KB"
    return f"{value} bytes"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Parsing -----------------------------------------------------------------------------


def parse(body: bytes, *, url: str = "") -> list[dict]:
    """The feed's entries as ingest items (newest MAX_ENTRIES, in the feed's order).

    `url` is the feed's address, used to resolve relative links. Raises FeedError when the
    body is a web page, declares XML entities, or is not RSS or Atom and yields no entries.
    """
    if _looks_like_html(body):
        raise _html_error()
    document = _as_parsed(body)
    if _declares_entities(document):
        # Entities are how XML bombs work: expat caps their expansion at 100 times the
        # input, which is still 500 MB for a 5 MB feed. Real feeds do not declare any.
        raise FeedError(
            _("The feed is not valid RSS or Atom: it declares XML entities, which are refused.")
        )
    # A file object, never the bytes themselves: feedparser opens bytes that look like a
    # path as a local file, and fetches strings that look like URLs. No base URL either:
    # feedparser would resolve relative guids against it, and an id must not change when
    # the feed's address does; links are resolved below instead.
    result = feedparser.parse(io.BytesIO(body))
    entries = list(result.entries)
    if not entries:
        problem = result.get("bozo_exception") if result.get("bozo") else None
        if isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe):
            problem = None
        if problem is not None:
            if b"<html" in body[:4096].lower():
                raise _html_error()
            raise FeedError(
                _("The feed is not valid RSS or Atom: %(reason)s.")
                % {"reason": _xml_reason(problem)}
            )
        if not result.get("version"):
            raise FeedError(_("The address did not return an RSS or Atom feed."))
        return []
    replies = _ReplyRefs(document)
    return [_item(entry, replies, base=url) for entry in _newest(entries, MAX_ENTRIES)]


def _as_parsed(body: bytes) -> bytes:
    """The body as feedparser's XML parser reads it: re-encoded as UTF-8 from whatever
    encoding it declares or betrays (UTF-16, UTF-7, EBCDIC...), so that a byte search for
    a declaration cannot be dodged with an unusual encoding. (If feedparser finds no
    encoding, it uses its lenient parser, which expands no declared entities.)"""
    try:
        return convert_to_utf8({}, body, {})
    except Exception:  # A guess at the encoding, nothing more: parse() decides.
        return body


class _Stop(Exception):
    pass


def _declares_entities(document: bytes) -> bool:
    """Whether the document may declare entities: "<!ENTITY" appears in it and its DOCTYPE
    has an internal subset, the only place a declaration takes effect.

    "<!ENTITY" may also be text (a blog post about XML, in CDATA), so expat reads the
    prolog to tell; it stops at the DOCTYPE or the first element, before anything is
    expanded. When it cannot tell, the answer is yes."""
    if b"<!ENTITY" not in document:
        return False
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def doctype(name, system_id, public_id, has_internal_subset) -> None:
        if has_internal_subset:
            raise _Stop(True)

    def element(name, attributes) -> None:
        raise _Stop(False)

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = element
    try:
        parser.Parse(document, True)
    except _Stop as stop:
        return stop.args[0]
    except (expat.ExpatError, LookupError, ValueError):
        return True
    return True


def _looks_like_html(body: bytes) -> bool:
    """Whether the body starts like a web page (after an XML declaration and comments)."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml"):
        head = head[head.find(b">") + 1 :].lstrip()
    # A loop rather than a regex with nested repeats, which could backtrack for ages.
    while head.startswith(b"<!--"):
        end = head.find(b"-->")
        if end < 0:
            return False
        head = head[end + 3 :].lstrip()
    return head.startswith((b"<!doctype html", b"<html"))


def _html_error() -> FeedError:
    return FeedError(
        _(
            "The feed is not valid RSS or Atom: the address returned a web page, not a feed. "
            "Use the address of its feed instead (often linked as “RSS” or ending in /feed)."
        )
    )


def _xml_reason(problem: Exception) -> str:
    get_message = getattr(problem, "getMessage", None)
    get_line = getattr(problem, "getLineNumber", None)
    if get_message and get_line:
        return _("%(problem)s at line %(line)s") % {
            "problem": get_message(),
            "line": get_line(),
        }
    return _shorten(str(problem) or type(problem).__name__, 150)


def _newest(entries: list, limit: int) -> list:
    if len(entries) <= limit:
        return entries

    def when(index: int) -> tuple:
        parsed = entries[index].get("published_parsed") or entries[index].get("updated_parsed")
        return tuple(parsed[:6]) if parsed else ()

    # Undated entries sort as the oldest; the sort is stable, so among equals the feed's
    # own order (usually newest first) decides.
    keep = set(sorted(range(len(entries)), key=when, reverse=True)[:limit])
    return [entry for index, entry in enumerate(entries) if index in keep]


def _item(entry, replies: "_ReplyRefs", *, base: str) -> dict:
    title = _detail_text(entry.get("title", ""), entry.get("title_detail"))
    text = _entry_text(entry) or title
    raw_id = (entry.get("id") or entry.get("link") or "").strip()
    detail = entry.get("author_detail") or {}
    name = _shorten(_collapse(detail.get("name") or entry.get("author") or ""), MAX_NAME)
    handle = name or _shorten((detail.get("email") or "").strip(), MAX_NAME) or "anonymous"
    return {
        "external_id": _external_id(raw_id, title, text),
        "author": {"handle": handle, "name": name, "url": _url(detail.get("href"), base)},
        "text": text,
        "url": _url(entry.get("link"), base),
        "created_at": _created_at(entry),
        "in_reply_to": _in_reply_to(entry, raw_id, replies),
        "title": title,
    }


def _entry_text(entry) -> str:
    for content in entry.get("content") or []:
        if text := _detail_text(content.get("value", ""), content):
            return text
    return _detail_text(entry.get("summary", ""), entry.get("summary_detail"))


def _detail_text(value: str, detail) -> str:
    if (detail or {}).get("type") == "text/plain":
        return _collapse(value or "")
    return _html_to_text(value or "")


_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:address|article|blockquote|br|dd|div|dl|dt|figcaption|figure|footer|h[1-6]"
    r"|header|hr|li|ol|p|pre|section|table|td|th|tr|ul)\b[^>]*>",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _html_to_text(value: str) -> str:
    # Block tags become line breaks first, or "<p>Hi</p><p>there</p>" reads "Hithere".
    text = _BLOCK_TAG.sub("\n", value)
    return _collapse(html.unescape(nh3.clean(text, tags=set())))


def _collapse(text: str) -> str:
    """One space between words, paragraphs kept (a blank line), no control characters
    (PostgreSQL refuses NUL in text)."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _external_id(raw_id: str, title: str, text: str) -> str:
    if raw_id and len(raw_id) <= MAX_EXTERNAL_ID:
        return raw_id
    # A stable stand-in: the same entry gives the same id on every poll.
    seed = raw_id or f"{title}\n{text}"
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def _url(value, base: str) -> str:
    """An absolute http(s) URL (relative ones resolved against the feed's), else ""."""
    value = (value or "").strip()
    if value and base:
        try:
            value = urljoin(base, value)
        except ValueError:
            return ""
    url = external_url(value)
    return url if len(url) <= MAX_URL else ""


def _created_at(entry) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        # feedparser gives struct_time in UTC.
        return datetime(*parsed[:6], tzinfo=UTC).isoformat()
    except (TypeError, ValueError):
        return None


def _in_reply_to(entry, raw_id: str, replies: "_ReplyRefs") -> str:
    # feedparser keeps <thr:in-reply-to ref="..."/> under "<prefix>_in-reply-to", with the
    # prefix the document chose: "thr" in WordPress comment feeds. Other prefixes are read
    # from the XML itself.
    reply = entry.get("thr_in-reply-to") or {}
    ref = (reply.get("ref") or "").strip() if hasattr(reply, "get") else ""
    return ref or replies.get(raw_id)


class _ReplyRefs:
    """Entry id → the id it answers, read from the Atom Threading Extension with
    ElementTree, once and only when needed."""

    def __init__(self, document: bytes):
        self._document = document
        self._refs: dict[str, str] | None = None

    def get(self, entry_id: str) -> str:
        if not entry_id:
            return ""
        if self._refs is None:
            self._refs = _thread_refs(self._document)
        return self._refs.get(entry_id, "")


def _thread_refs(document: bytes) -> dict[str, str]:
    """`document` is the UTF-8 body that passed _declares_entities; a document with any DOCTYPE
    is still skipped, so ElementTree never sees a DTD."""
    if THREAD_NS.encode() not in document or b"<!DOCTYPE" in document:
        return {}
    try:
        root = ET.fromstring(document)  # noqa: S314 - no DTD, so no entities (see above).
    except (ET.ParseError, LookupError, ValueError):
        return {}
    entry_tags = {f"{{{ATOM_NS}}}entry", "item", f"{{{RSS1_NS}}}item"}
    refs: dict[str, str] = {}
    for element in root.iter():
        if element.tag not in entry_tags:
            continue
        entry_id = (element.findtext(f"{{{ATOM_NS}}}id") or element.findtext("guid") or "").strip()
        reply = element.find(f"{{{THREAD_NS}}}in-reply-to")
        if entry_id and reply is not None and (reply.get("ref") or "").strip():
            refs.setdefault(entry_id, reply.get("ref").strip())
    return refs


# Matching ----------------------------------------------------------------------------


def matches_keywords(entry: dict, keywords: str) -> bool:
    """keywords: comma-separated brand terms ("" means everything matches). A term matches
    the entry's title or text as a whole word (or phrase), ignoring case and accents:
    "cafe" finds "Café", "acme" finds "ACME's" but not "acmeville"."""
    return analysis.mentions_any(f"{entry.get('title') or ''}\n{entry.get('text') or ''}", keywords)
