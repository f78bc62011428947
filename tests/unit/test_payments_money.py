"""Money in minor units, order ids, Stars payloads and clawback targets: plain rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payments._money import (
    clawback_target,
    from_minor,
    is_order_id,
    new_order_id,
    parse_stars_payload,
    stars_payload,
    to_minor,
)


@pytest.mark.parametrize(("price", "currency", "minor"), [
    ("4.99", "USD", 499), ("19.9", "eur", 1990), ("0", "USD", 0), ("500", "JPY", 500),
    ("1.234", "KWD", 1234), ("250", "XTR", 250),
])
def test_prices_become_minor_units_and_back(price: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(price), currency) == minor
    assert from_minor(minor, currency) == Decimal(price)


@pytest.mark.parametrize(("price", "currency"), [("4.999", "USD"), ("1.5", "JPY")])
def test_a_price_finer_than_its_currency_is_refused(price: str, currency: str) -> None:
    with pytest.raises(ValueError, match="decimals"):
        to_minor(Decimal(price), currency)


def test_order_ids_are_unique_and_recognisable() -> None:
    ids = {new_order_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_order_id(i) and len(i) <= 40 for i in ids)
    assert not is_order_id("vf_" + "g" * 24)
    assert not is_order_id(12)


def test_stars_payloads_round_trip_and_refuse_anything_else() -> None:
    order = new_order_id()
    payload = stars_payload(order, "starter")
    assert parse_stars_payload(payload) == (order, "starter")
    assert parse_stars_payload(stars_payload(order, "a:b")) == (order, "a:b")
    for junk in ("", "vf1", f"vf2:{order}:starter", f"vf1:{order}:", "vf1:vf_1:starter",
                 f"vf1:{order}:" + "x" * 200):
        assert parse_stars_payload(junk) is None
    with pytest.raises(ValueError, match="too long"):
        stars_payload(order, "p" * 100)


@pytest.mark.parametrize(("refunded", "disputed", "target"), [
    (0, False, 0), (1, False, 1), (100, False, 21), (250, False, 51), (498, False, 100),
    (499, False, 100), (600, False, 100), (0, True, 100), (100, True, 100),
])
def test_clawback_targets(refunded: int, disputed: bool, target: int) -> None:
    assert clawback_target(credits=100, amount=499, refunded=refunded,
                           disputed=disputed) == target


def test_targets_only_grow_as_refunds_add_up() -> None:
    targets = [clawback_target(credits=7, amount=1000, refunded=r, disputed=False)
               for r in range(0, 1001, 50)]
    assert targets == sorted(targets)
    assert (targets[0], targets[-1]) == (0, 7)
