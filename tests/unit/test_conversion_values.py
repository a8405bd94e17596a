"""Money in conversion reports: per currency, net of negatives, exact decimals."""

from __future__ import annotations

from decimal import Decimal

from control.conversions.reports.service import currency_values, rate


def test_net_is_sales_less_every_negative_per_currency() -> None:
    rows = [
        ("EUR", "sale", Decimal("100.10")),
        ("EUR", "sale", Decimal("29.90")),
        ("EUR", "refund", Decimal("30")),
        ("EUR", "reversal", Decimal("0.5")),
        ("EUR", "lead", Decimal("7")),
        ("USD", "cancellation", Decimal("5")),
    ]

    eur, usd = currency_values(rows)

    assert eur.currency == "EUR"
    assert (eur.sales, eur.refunds, eur.reversals, eur.leads) == ("130.00", "30", "0.5", "7")
    assert eur.net == "99.50"  # leads are not revenue
    assert (usd.currency, usd.sales, usd.net) == ("USD", "0", "-5")


def test_no_values_no_currencies() -> None:
    assert currency_values([]) == []


def test_rate_is_rounded_and_null_without_clicks() -> None:
    assert rate(1, 3) == 0.3333
    assert rate(5, 0) is None
    assert rate(0, 10) == 0.0
