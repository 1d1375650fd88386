"""``url_domain``'s one-step match against the general parse, over many URL shapes."""

from __future__ import annotations

import itertools
import random

import pytest

from crmsync_plugins.transforms.functions import parsed_url_domain, url_domain

SCHEMES = [
    "",
    "http://",
    "https://",
    "HTTPS://",
    "ftp://",
    "svn+ssh://",
    "//",
    "///",
    "mailto:",
    "a.b-c://",
    "1http://",
]
USERS = ["", "user@", "user:pw@", "@", "a@b@"]
HOSTS = [
    "example.com",
    "www.Example.COM",
    "WWW.example.co.uk",
    "sub.www.example.com",
    "www2.example.com",
    "www.",
    "www",
    "example.com.",
    "...",
    "-",
    "localhost",
    "127.0.0.1",
    "[2001:db8::1]",
    "[::1",
    "bücher.de",
    "\u212aelvin.com",  # the Kelvin sign: a letter only ignoring case
    "\u0130stanbul.tr",
    "ex ample.com",
    "ex_ample.com",
    "",
]
PORTS = ["", ":8080", ":", ":80a", ":x@evil.com"]
TAILS = ["", "/", "/about", "?q=1", "#top", "/a?b#c", "/@x", "\\path", " trailing", "/ü"]
PADS = ["", " ", "\t", "\n "]


def test_every_combination_of_the_parts() -> None:
    for scheme, user, host, port, tail in itertools.product(SCHEMES, USERS, HOSTS, PORTS, TAILS):
        url = scheme + user + host + port + tail
        assert url_domain(url) == parsed_url_domain(url), url


@pytest.mark.parametrize("seed", range(5))
def test_random_urls(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "aZ.-:/@?#[]_ \tw3ü\u212a"
    for _ in range(20_000):
        if rng.random() < 0.5:
            url = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        else:
            url = rng.choice(PADS) + "".join(rng.choice(part) for part in (SCHEMES, USERS, HOSTS, PORTS, TAILS))
            url += rng.choice(PADS)
        assert url_domain(url) == parsed_url_domain(url), repr(url)


@pytest.mark.parametrize("value", [None, 5, 2.0, True, ["https://x.com"], {"u": "https://x.com"}])
def test_values_that_are_not_text(value: object) -> None:
    assert url_domain(value) == parsed_url_domain(value)


def test_user_info_and_scheme_relative_urls_take_the_one_step_match(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync_plugins.transforms import functions

    def general_parse(value: object) -> None:
        raise AssertionError(f"{value!r} took the general parse")

    monkeypatch.setattr(functions, "parsed_url_domain", general_parse)
    assert url_domain("https://user:pw@www.Example.com:8443/p") == "example.com"
    assert url_domain("//example.com/") == "example.com"
    assert url_domain("a@b@Sub.example.org?x") == "sub.example.org"
