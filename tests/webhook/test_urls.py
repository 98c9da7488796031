"""Which webhook URLs we call, decided without DNS: a brand cannot make our worker call the
cloud metadata service, a loopback port or a private network, however the address is
spelled; in dev mode a receiver on this machine is fine."""

from __future__ import annotations

import ipaddress

import pytest

from discount_codes.problems import WebhookUrlRefused
from discount_codes.webhook import urls


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("10.0.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("fc00::1", "a private address"),
        ("224.0.0.1", "a non-public address"),
        ("0.0.0.0", "a private address"),  # noqa: S104 - an address we refuse
        # The same addresses inside IPv6: mapped, 6to4 and NAT64.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("2002:a00:1::", "a private address"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
        ("64:ff9b::5db8:d822", None),
    ],
)
def test_an_address_is_refused_for_what_it_is(address: str, why: str | None) -> None:
    assert urls.refused_address(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://shop.example.com/hooks", urls.HTTPS_ONLY),
        ("ftp://shop.example.com/hooks", urls.HTTPS_ONLY),
        ("https:///hooks", "The URL has no host."),
        ("https://shop.example.com:99999/hooks", "The URL cannot be parsed."),
        (
            "https://user:pw@shop.example.com/hooks",
            "The URL must not carry a user name or password.",
        ),
        ("https://shop.example.com/" + "a" * 2048, "The URL is longer than 2048 characters."),
    ],
)
def test_a_url_is_refused_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(WebhookUrlRefused) as raised:
        urls.parse(url, allow_private=False)
    assert raised.value.detail == message


def test_dev_mode_lets_plain_http_through_parsing_and_says_where() -> None:
    assert urls.parse("http://127.0.0.1:9000/hooks", allow_private=False, allow_loopback=True)
    with pytest.raises(WebhookUrlRefused) as raised:
        urls.parse("ftp://127.0.0.1/hooks", allow_private=False, allow_loopback=True)
    assert raised.value.detail == urls.DEV_HTTP


async def test_a_public_address_is_pinned_and_keeps_its_host_for_tls() -> None:
    target = await urls.target("https://93.184.216.34/hooks?x=1", allow_private=False)
    assert target.url == "https://93.184.216.34:443/hooks?x=1"
    assert target.host_header == "93.184.216.34"
    assert target.sni_hostname == "93.184.216.34"
    v6 = await urls.target("https://[2606:2800:220:1::1]:8443/h", allow_private=False)
    assert v6.url == "https://[2606:2800:220:1::1]:8443/h"


async def test_dev_mode_calls_loopback_only() -> None:
    local = await urls.target(
        "http://127.0.0.1:9000/hooks", allow_private=False, allow_loopback=True
    )
    assert local.url == "http://127.0.0.1:9000/hooks" and local.sni_hostname is None
    for url in ("http://10.0.0.1/hooks", "https://169.254.169.254/latest"):
        with pytest.raises(WebhookUrlRefused, match="in dev mode only a receiver on this machine"):
            await urls.target(
                url.replace("http://", "https://"), allow_private=False, allow_loopback=True
            )
    with pytest.raises(WebhookUrlRefused) as raised:
        await urls.target("http://93.184.216.34/hooks", allow_private=False, allow_loopback=True)
    assert raised.value.detail == urls.DEV_HTTP


async def test_a_private_address_is_refused_and_allow_private_lets_anything_through() -> None:
    with pytest.raises(WebhookUrlRefused, match="resolves to a private address"):
        await urls.check_url("https://10.1.2.3/hooks", allow_private=False)
    anything = await urls.target("http://user:pw@10.1.2.3:8080/hooks", allow_private=True)
    assert anything.url == "http://user:pw@10.1.2.3:8080/hooks"
    assert anything.host_header == "10.1.2.3:8080"
