"""Which addresses count as public, and which URLs relay refuses without touching the network."""

from __future__ import annotations

import pytest

from storage import is_public_address

PUBLIC = ["8.8.8.8", "93.184.215.14", "2606:4700::6810:85e5", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "2002:808:808::1"]
NOT_PUBLIC = [
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "127.8.9.10", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12::1",
    "ff02::1", "2001:db8::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::a00:1", "2002:7f00:1::", "2002:a00:1::", "::127.0.0.1", "not-an-ip", "",
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert not is_public_address(address)
