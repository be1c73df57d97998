"""engage.feeds: fetching feeds safely from hostile servers, and parsing them into items.

The fetch tests talk to tests.feed_server on 127.0.0.1, which fetch() refuses unless the
test allows it, so each test says which hosts it allows.
"""

import gzip
import socket
import time

import pytest

from engage.feeds import FeedError, Fetched, fetch, matches_keywords, parse
from tests.feed_server import feed_server, serving  # noqa: F401 - a fixture

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Acme fans</title>
  <link>https://fans.example.com/</link>
  <description>Talk about Acme</description>
  <item>
    <title>Acme &amp; me</title>
    <link>https://fans.example.com/posts/1</link>
    <guid isPermaLink="false">post-1</guid>
    <dc:creator>Zoë Lambert</dc:creator>
    <pubDate>Tue, 02 Jan 2024 10:00:00 +0200</pubDate>
    <description><![CDATA[<p>I <b>love</b> the new Acme kettle &amp; its caf&eacute; mode ☕🎉</p>
      <p>Second   paragraph.</p><script>alert("x")</script>]]></description>
  </item>
  <item>
    <title>Link only</title>
    <link>/posts/2</link>
    <author>sam@example.com (Sam)</author>
    <description>Plain &lt;3 text</description>
  </item>
  <item>
    <title>Nothing but a title</title>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Reviews</title>
  <id>tag:reviews.example.com,2024:feed</id>
  <updated>2024-03-01T12:00:00Z</updated>
  <entry>
    <id>tag:reviews.example.com,2024:review-7</id>
    <title type="html">Five stars for &lt;em&gt;Acme&lt;/em&gt;</title>
    <link rel="alternate" href="https://reviews.example.com/r/7"/>
    <author><name>Ana Núñez</name><uri>https://ana.example.org/</uri></author>
    <updated>2024-03-01T09:30:00-05:00</updated>
    <content type="html">&lt;p&gt;Works &amp;amp; looks great&amp;nbsp;&#x1F44D;&lt;/p&gt;</content>
  </entry>
</feed>
"""

WORDPRESS_COMMENTS = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
  <title>Comments on: Our new kettle</title>
  <id>https://blog.example.com/kettle/feed/atom/</id>
  <updated>2024-05-02T08:00:00Z</updated>
  <entry>
    <title>By: Lee</title>
    <link rel="alternate" href="https://blog.example.com/kettle/#comment-12" type="text/html"/>
    <author><name>Lee</name><uri>https://lee.example.net</uri></author>
    <id>https://blog.example.com/?p=42#comment-12</id>
    <updated>2024-05-02T08:00:00Z</updated>
    <published>2024-05-02T08:00:00Z</published>
    <thr:in-reply-to ref="https://blog.example.com/?p=42#comment-11"
        href="https://blog.example.com/kettle/#comment-11" type="text/html"/>
    <content type="html">&lt;p&gt;Same here, the Acme lid sticks.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>By: Kim</title>
    <link rel="alternate" href="https://blog.example.com/kettle/#comment-11" type="text/html"/>
    <author><name>Kim</name></author>
    <id>https://blog.example.com/?p=42#comment-11</id>
    <published>2024-05-01T18:00:00Z</published>
    <thr:in-reply-to ref="https://blog.example.com/?p=42"
        href="https://blog.example.com/kettle/" type="text/html"/>
    <content type="html">&lt;p&gt;The lid of my Acme kettle sticks.&lt;/p&gt;</content>
  </entry>
</feed>
"""

WORDPRESS_RSS_COMMENTS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Comments on: Our new kettle</title>
  <item>
    <title>By: Kim</title>
    <link>https://blog.example.com/kettle/#comment-11</link>
    <dc:creator><![CDATA[Kim]]></dc:creator>
    <pubDate>Wed, 01 May 2024 18:00:00 +0000</pubDate>
    <guid isPermaLink="false">https://blog.example.com/?p=42#comment-11</guid>
    <description><![CDATA[The lid sticks.]]></description>
  </item>
</channel>
</rss>
"""

REFUSED_LOOPBACK = (
    "Refused: 127.0.0.1 is a loopback address "
    "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it)."
)


def rss_with_items(count: int) -> str:
    items = "".join(
        f"<item><guid>item-{n}</guid><title>Item {n}</title><description>Text {n}</description>"
        f"<pubDate>{_rfc822(n)}</pubDate></item>"
        for n in range(count)
    )
    return f'<rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'


def _rfc822(n: int) -> str:
    # Item n is n minutes after midnight on 1 January 2024.
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1704067200 + 60 * n))


@pytest.fixture
def server(settings, feed_server):  # noqa: F811 - the fixture imported above
    """The test server, its address allowed as an intranet forum's would be."""
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
    return feed_server


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Parsing -----------------------------------------------------------------------------


def test_rss_items_become_plain_text_items():
    items = parse(RSS.encode(), url="https://fans.example.com/feed/")

    assert items[0] == {
        "external_id": "post-1",
        "author": {"handle": "Zoë Lambert", "name": "Zoë Lambert", "url": ""},
        "text": "I love the new Acme kettle & its café mode ☕🎉\n\nSecond paragraph.",
        "url": "https://fans.example.com/posts/1",
        "created_at": "2024-01-02T08:00:00+00:00",
        "in_reply_to": "",
        "title": "Acme & me",
    }
    # No guid: the link, resolved against the feed's address; the author's name, not the
    # e-mail address, is the handle.
    assert items[1]["external_id"] == "/posts/2"
    assert items[1]["url"] == "https://fans.example.com/posts/2"
    assert items[1]["author"]["handle"] == "Sam"
    assert items[1]["text"] == "Plain <3 text"
    assert items[1]["created_at"] is None
    # No guid and no link: a stable hash; no text: the title.
    assert items[2]["external_id"].startswith("sha256:")
    assert items[2]["external_id"] == parse(RSS.encode())[2]["external_id"]
    assert items[2]["text"] == "Nothing but a title"
    assert items[2]["author"] == {"handle": "anonymous", "name": "", "url": ""}


def test_atom_entries_become_plain_text_items():
    [item] = parse(ATOM.encode())

    assert item == {
        "external_id": "tag:reviews.example.com,2024:review-7",
        "author": {"handle": "Ana Núñez", "name": "Ana Núñez", "url": "https://ana.example.org/"},
        "text": "Works & looks great 👍",
        "url": "https://reviews.example.com/r/7",
        "created_at": "2024-03-01T14:30:00+00:00",
        "in_reply_to": "",
        "title": "Five stars for Acme",
    }


def test_wordpress_atom_comment_feed_gives_the_parent():
    reply, comment = parse(WORDPRESS_COMMENTS.encode())

    assert reply["external_id"] == "https://blog.example.com/?p=42#comment-12"
    assert reply["in_reply_to"] == "https://blog.example.com/?p=42#comment-11"
    assert reply["author"] == {"handle": "Lee", "name": "Lee", "url": "https://lee.example.net"}
    assert reply["text"] == "Same here, the Acme lid sticks."
    # WordPress points top-level comments at the post itself.
    assert comment["in_reply_to"] == "https://blog.example.com/?p=42"


def test_threading_extension_under_another_prefix_is_read_too():
    body = WORDPRESS_COMMENTS.replace('xmlns:thr="', 'xmlns:t="').replace(
        "thr:in-reply-to", "t:in-reply-to"
    )

    reply, comment = parse(body.encode())

    assert reply["in_reply_to"] == "https://blog.example.com/?p=42#comment-11"
    assert comment["in_reply_to"] == "https://blog.example.com/?p=42"


def test_wordpress_rss_comment_feed_has_no_parent():
    [item] = parse(WORDPRESS_RSS_COMMENTS.encode())

    assert item["external_id"] == "https://blog.example.com/?p=42#comment-11"
    assert item["in_reply_to"] == ""
    assert item["author"]["handle"] == "Kim"


def test_at_most_a_thousand_entries_keeping_the_newest():
    # Items 0..1004 with item n published n minutes after midnight, oldest first.
    items = parse(rss_with_items(1005).encode())

    assert len(items) == 1000
    assert items[0]["external_id"] == "item-5"
    assert items[-1]["external_id"] == "item-1004"


def test_an_empty_feed_has_no_items():
    assert parse(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>') == []


def test_malformed_xml_without_entries_is_refused():
    with pytest.raises(FeedError) as error:
        parse(b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>Broken</ti')

    assert error.value.message.startswith("The feed is not valid RSS or Atom: ")
    assert "line 2" in error.value.message


def test_malformed_xml_with_entries_keeps_them():
    body = RSS.replace("Talk about Acme", "Talk about Acme & friends")  # A bare "&".

    items = parse(body.encode())

    assert [item["external_id"] for item in items][:1] == ["post-1"]


def test_an_html_page_is_refused():
    page = b"<!DOCTYPE html>\n<html><head><title>Fans</title></head><body><p>Hi</p></body></html>"

    with pytest.raises(FeedError) as error:
        parse(page)

    assert error.value.message == (
        "The feed is not valid RSS or Atom: the address returned a web page, not a feed. "
        "Use the address of its feed instead (often linked as “RSS” or ending in /feed)."
    )


def test_a_page_of_comments_is_checked_quickly():
    # Many comments and no feed: a backtracking regex would take ages here.
    body = b"<!---->" * 140 + b"<rss"
    started = time.monotonic()

    with pytest.raises(FeedError):
        parse(body)

    assert time.monotonic() - started < 1


def test_xml_that_is_not_a_feed_is_refused():
    sitemap = b'<?xml version="1.0"?><urlset><url><loc>https://example.com/</loc></url></urlset>'

    with pytest.raises(FeedError, match="did not return an RSS or Atom feed"):
        parse(sitemap)


def test_a_body_naming_a_local_file_is_not_opened(tmp_path):
    # feedparser opens bytes that look like a path: a server answering with the path of a
    # feed on engage's disk must not get that file parsed.
    local_feed = tmp_path / "feed.xml"
    local_feed.write_text(RSS)

    with pytest.raises(FeedError):
        parse(str(local_feed).encode())


ENTITY_BOMB = (
    '<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
    + ']><rss version="2.0"><channel><item><guid>1</guid><title>&j;</title></item></channel></rss>'
)
ENTITIES_REFUSED = "The feed is not valid RSS or Atom: it declares XML entities, which are refused."


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-7", "cp037"])
def test_an_entity_bomb_is_refused_whatever_its_encoding(encoding):
    # feedparser re-encodes UTF-16, UTF-7 and EBCDIC bodies before its XML parser reads
    # them, so a search of the raw bytes would miss the declarations in three of these.
    body = ENTITY_BOMB.format(encoding=encoding).encode(encoding)
    started = time.monotonic()

    with pytest.raises(FeedError) as error:
        parse(body)

    assert error.value.message == ENTITIES_REFUSED
    assert time.monotonic() - started < 0.5


def test_entity_declarations_as_text_are_not_refused():
    body = RSS.replace("Second   paragraph.", 'Declare one with <!ENTITY a "b">.')

    items = parse(body.encode())

    assert items[0]["text"].endswith('Declare one with <!ENTITY a "b">.')


def test_an_rss_091_doctype_without_entities_is_read():
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91"><channel>'
        "<title>Old</title><item><title>Acme</title><link>https://old.example.com/1</link></item>"
        "</channel></rss>"
    )

    [item] = parse(body.encode())

    assert item["external_id"] == "https://old.example.com/1"
    assert item["text"] == "Acme"


# Matching keywords -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ("", True),
        (" , ", True),
        ("acme", True),
        ("ACME", True),
        ("kettle, toaster", True),
        ("toaster", False),
        ("cafe mode", True),  # Accents ignored, phrases work.
        ("CAFÉ", True),
        ("acm", False),  # Whole words only.
        ("new acme", True),
        ("zoe", False),  # The author is not searched.
    ],
)
def test_matches_keywords(keywords, expected):
    entry = {"title": "Acme & me", "text": "I love the new ACME kettle & its café mode"}

    assert matches_keywords(entry, keywords) is expected


def test_keywords_match_the_title_and_ignore_case_in_both_directions():
    assert matches_keywords({"title": "Über ACME's lid", "text": ""}, "uber, nothing")
    assert matches_keywords({"title": "", "text": "über acme's lid"}, "Acme")
    assert not matches_keywords({"title": "", "text": "acmeville"}, "acme")


# Fetching: the happy paths -----------------------------------------------------------


def test_fetch_returns_the_body_and_its_validators(server):
    url = server.route("/feed", RSS, etag='"v1"', last_modified="Tue, 02 Jan 2024 08:00:00 GMT")

    fetched = fetch(url)

    assert fetched == Fetched(
        not_modified=False,
        body=RSS.encode(),
        etag='"v1"',
        last_modified="Tue, 02 Jan 2024 08:00:00 GMT",
        url=url,
    )
    [request] = server.requests
    assert request.headers["User-Agent"] == "engage-feed-reader/1.0"
    assert "application/rss+xml" in request.headers["Accept"]
    assert "application/atom+xml" in request.headers["Accept"]
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"
    assert request.headers["If-None-Match"] is None
    assert parse(fetched.body, url=fetched.url)[0]["external_id"] == "post-1"


def test_conditional_get_sends_the_validators_and_handles_304(server):
    url = server.route("/feed", RSS, etag='"v2"')

    fetched = fetch(url, etag='"v2"', last_modified="Tue, 02 Jan 2024 08:00:00 GMT")

    assert fetched == Fetched(
        not_modified=True,
        body=b"",
        etag='"v2"',
        last_modified="Tue, 02 Jan 2024 08:00:00 GMT",  # Kept: the 304 did not send one.
        url=url,
    )
    [request] = server.requests
    assert request.headers["If-None-Match"] == '"v2"'
    assert request.headers["If-Modified-Since"] == "Tue, 02 Jan 2024 08:00:00 GMT"


def test_a_changed_feed_answers_200_with_its_new_etag(server):
    url = server.route("/feed", RSS, etag='"v3"')

    fetched = fetch(url, etag='"v2"')

    assert (fetched.not_modified, fetched.etag, fetched.body) == (False, '"v3"', RSS.encode())


def test_if_modified_since_alone_gives_304(server):
    url = server.route("/feed", RSS, last_modified="Tue, 02 Jan 2024 08:00:00 GMT")

    fetched = fetch(url, last_modified="Tue, 02 Jan 2024 08:00:00 GMT")

    assert fetched.not_modified is True
    assert fetched.body == b""


def test_relative_redirects_are_followed(server):
    server.redirect("/old", "/blog/feed", status=301)
    server.redirect("/blog/feed", "atom")  # Relative to /blog/.
    target = server.route("/blog/atom", ATOM)

    fetched = fetch(server.url("/old"))

    assert fetched.url == target
    assert fetched.body == ATOM.encode()
    assert server.paths() == ["/old", "/blog/feed", "/blog/atom"]


def test_gzip_is_decoded(server):
    url = server.route("/feed", gzip.compress(RSS.encode()), headers={"Content-Encoding": "gzip"})

    assert fetch(url).body == RSS.encode()
    assert "gzip" in server.requests[0].headers["Accept-Encoding"]


def test_ipv6_literals_work(settings):
    if not ipv6_loopback():
        pytest.skip("No IPv6 loopback here.")
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["[::1]"]
    with serving("::1") as server:
        url = server.route("/feed", RSS)

        assert fetch(url).body == RSS.encode()
        assert server.requests[0].headers["Host"] == f"[::1]:{server.port}"


def test_the_connection_goes_to_the_address_that_was_checked(server, settings, monkeypatch):
    """DNS rebinding: the name is resolved once; a second answer is never used."""
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["feeds.intranet.test"]
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.255.255.1"])  # The second would be another machine.
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "feeds.intranet.test":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    server.route("/feed", RSS)

    fetched = fetch(f"http://feeds.intranet.test:{server.port}/feed")

    assert fetched.body == RSS.encode()
    assert lookups == ["feeds.intranet.test"]
    assert server.requests[0].headers["Host"] == f"feeds.intranet.test:{server.port}"


def test_allowed_hosts_ignore_case(server, settings):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["LocalHost"]
    url = server.route("/feed", RSS).replace("127.0.0.1", "LOCALHOST.")

    assert fetch(url).body == RSS.encode()


# Fetching: what is refused before any request is sent -------------------------------


def test_loopback_is_refused_by_default(settings):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = []
    with serving() as server:
        url = server.route("/feed", RSS)

        with pytest.raises(FeedError) as error:
            fetch(url)

        assert error.value.message == REFUSED_LOOPBACK
        assert server.requests == []


def test_a_name_resolving_to_loopback_is_refused(server):
    # The server's address is allowed, but not the name "localhost".
    url = server.route("/feed", RSS).replace("127.0.0.1", "localhost")

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message.startswith("Refused: localhost resolves to ")
    assert "a loopback address (add the host to ENGAGE_FEED_ALLOWED_HOSTS" in error.value.message
    assert server.requests == []


def test_one_private_address_among_public_ones_is_enough_to_refuse(settings, monkeypatch):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = []

    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "blog.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    with pytest.raises(FeedError) as error:
        fetch("https://blog.example.com/feed")

    assert error.value.message == (
        "Refused: blog.example.com resolves to 10.0.0.5, a private address "
        "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it)."
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "Refused: 169.254.169.254 is a link-local address, used by cloud metadata "
            "services (add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://[fd00:ec2::254]/latest/meta-data/",
            "Refused: fd00:ec2::254 is a private address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://[::ffff:127.0.0.1]/",
            "Refused: ::ffff:127.0.0.1 is a loopback address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://[fe80::1]/",
            "Refused: fe80::1 is a link-local address, used by cloud metadata "
            "services (add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://0.0.0.0/",
            "Refused: 0.0.0.0 is an unspecified address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://[::]/",
            "Refused: :: is an unspecified address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://192.168.1.10/feed",
            "Refused: 192.168.1.10 is a private address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://224.0.0.1/",
            "Refused: 224.0.0.1 is a multicast address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://[64:ff9b::a9fe:a9fe]/",
            "Refused: 64:ff9b::a9fe:a9fe is a link-local address, used by cloud metadata "
            "services (add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
        (
            "http://100.64.0.1/",
            "Refused: 100.64.0.1 is not a public address "
            "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it).",
        ),
    ],
)
def test_internal_addresses_are_refused(settings, url, message):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == message


def test_a_decimal_ip_is_judged_by_the_address_it_means(settings):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = []

    with pytest.raises(FeedError) as error:
        fetch("http://2130706433/")  # 127.0.0.1

    assert error.value.message.startswith("Refused: 2130706433 resolves to 127.0.0.1, a loopback")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/feed.xml", "Only http and https feeds can be fetched, not ftp."),
        ("file:///etc/passwd", "Only http and https feeds can be fetched, not file."),
        ("gopher://example.com/", "Only http and https feeds can be fetched, not gopher."),
        (
            "example.com/feed",
            "“example.com/feed” is not a web address: it should start with https:// or http://.",
        ),
        ("http:///feed", "The address http:///feed has no host name."),
        (
            "https://user:secret@example.com/feed",
            "Addresses with a user name or password are not supported.",
        ),
        ("http://example.com:99999/", "“http://example.com:99999/” is not a valid web address."),
    ],
)
def test_addresses_that_are_not_web_feeds_are_refused(url, message):
    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == message


# Fetching: redirects -----------------------------------------------------------------


def test_a_redirect_to_loopback_is_refused(server):
    """The first hop is allowed; the redirect's target is checked again on its own."""
    secret = f"http://localhost:{server.port}/secret"
    server.route("/secret", "internal data")
    url = server.redirect("/feed", secret)

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message.startswith(f"The feed redirected to {secret}. Refused: localhost ")
    assert server.paths() == ["/feed"]


def test_a_redirect_to_the_metadata_service_is_refused(server):
    url = server.redirect("/feed", "http://169.254.169.254/latest/meta-data/")

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed redirected to http://169.254.169.254/latest/meta-data/. Refused: "
        "169.254.169.254 is a link-local address, used by cloud metadata services "
        "(add the host to ENGAGE_FEED_ALLOWED_HOSTS to allow it)."
    )
    assert server.paths() == ["/feed"]


def test_a_redirect_to_another_scheme_is_refused(server):
    url = server.redirect("/feed", "file:///etc/passwd")

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed redirected to file:///etc/passwd. "
        "Only http and https feeds can be fetched, not file."
    )


def test_a_redirect_to_an_invalid_address(server):
    url = server.redirect("/feed", "http://[::1/")

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed redirected to http://[::1/, which is not a valid web address."
    )


def test_too_many_redirects(server, settings):
    settings.ENGAGE_FEED_MAX_REDIRECTS = 2
    for n in range(5):
        server.redirect(f"/hop{n}", f"/hop{n + 1}")

    with pytest.raises(FeedError) as error:
        fetch(server.url("/hop0"))

    assert error.value.message == "The feed redirected more than 2 times; giving up."
    assert server.paths() == ["/hop0", "/hop1", "/hop2"]


def test_a_redirect_without_location(server):
    url = server.route("/feed", status=302)

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == "The feed answered 302 Found without saying where to go."


# Fetching: bad answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "The feed answered 404 Not Found."),
        (410, "The feed answered 410 Gone."),
        (500, "The feed answered 500 Internal Server Error."),
        (599, "The feed answered 599."),
    ],
)
def test_error_statuses(server, status, message):
    url = server.route("/feed", "<html>Oops</html>", status=status, content_type="text/html")

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == message


def test_a_body_over_the_cap_is_cut_off(server, settings):
    settings.ENGAGE_FEED_MAX_BYTES = 1000
    url = server.route("/feed", b"x" * 5000, content_length=False)

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == "The feed is larger than 1000 bytes; it was not read."


def test_a_body_at_the_cap_is_read(server, settings):
    settings.ENGAGE_FEED_MAX_BYTES = 1000
    url = server.route("/feed", b"x" * 1000, content_length=False)

    assert len(fetch(url).body) == 1000


def test_a_content_length_over_the_cap_is_refused_before_reading(server, settings):
    settings.ENGAGE_FEED_MAX_BYTES = 5 * 1024 * 1024
    # The server announces 50 MB and then sends its body slowly: waiting for it would fail
    # the deadline, so a quick refusal shows the body was never read.
    settings.ENGAGE_FEED_TIMEOUT_SECONDS = 5
    url = server.route(
        "/feed", b"x" * 100, headers={"Content-Length": str(50 * 1024 * 1024)}, trickle=0.5
    )
    started = time.monotonic()

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == "The feed is larger than 5 MB; it was not read."
    assert time.monotonic() - started < 1.5


def test_a_gzip_bomb_is_stopped_at_the_cap(server, settings):
    settings.ENGAGE_FEED_MAX_BYTES = 1024 * 1024
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024  # Its Content-Length passes the early check.
    url = server.route("/feed", bomb, headers={"Content-Encoding": "gzip"})

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == "The feed is larger than 1 MB; it was not read."


def test_a_body_cut_short(server):
    url = server.route("/feed", RSS[:100], headers={"Content-Length": "5000"})

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message.startswith("The connection to 127.0.0.1 failed: ")
    assert "IncompleteRead(100 bytes read, 4900 more expected)" in error.value.message


def test_a_broken_gzip_body(server):
    url = server.route("/feed", b"not gzip at all", headers={"Content-Encoding": "gzip"})

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed from 127.0.0.1 was compressed in a way that could not be read."
    )


def test_a_server_that_does_not_answer_times_out(server, settings):
    settings.ENGAGE_FEED_TIMEOUT_SECONDS = 0.5
    url = server.route("/feed", RSS, delay=5)
    started = time.monotonic()

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == "127.0.0.1 did not answer within 0.5 seconds."
    assert time.monotonic() - started < 1.5


def test_a_trickled_body_is_stopped_at_the_deadline(server, settings):
    # One byte every 0.1 s never trips the 0.5 s read timeout, but the whole fetch may
    # take three times the timeout.
    settings.ENGAGE_FEED_TIMEOUT_SECONDS = 0.5
    url = server.route("/feed", RSS, trickle=0.1)
    started = time.monotonic()

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed took longer than 1.5 seconds to download; it was stopped."
    )
    assert time.monotonic() - started < 2.5


def test_trickled_headers_are_stopped_at_the_deadline(server, settings):
    settings.ENGAGE_FEED_TIMEOUT_SECONDS = 0.5
    url = server.route("/feed", RSS, trickle=0.1, trickle_headers=True)
    started = time.monotonic()

    with pytest.raises(FeedError) as error:
        fetch(url)

    assert error.value.message == (
        "The feed took longer than 1.5 seconds to download; it was stopped."
    )
    assert time.monotonic() - started < 2.5


def test_a_refused_connection(settings):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
    port = closed_port()

    with pytest.raises(FeedError) as error:
        fetch(f"http://127.0.0.1:{port}/feed")

    assert error.value.message == "Could not connect to 127.0.0.1: the connection was refused."


def test_an_unknown_host(settings, monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    with pytest.raises(FeedError) as error:
        fetch("https://no-such-blog.example.com/feed")

    assert error.value.message == (
        "Could not find the host no-such-blog.example.com (Name or service not known)."
    )


def test_https_to_a_server_that_does_not_speak_it(server):
    server.route("/feed", RSS)

    with pytest.raises(FeedError) as error:
        fetch(f"https://127.0.0.1:{server.port}/feed")

    assert error.value.message.startswith("The secure connection to 127.0.0.1 failed: ")
