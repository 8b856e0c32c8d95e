"""Economics: hashprice from its inputs, breakeven per model, the hashprice series importer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.curtail.economics import (
    Economics,
    HashpriceSeries,
    breakeven_per_kwh,
    hashprice_usd_per_th_day,
    margin_usd_per_period,
    read_hashprice_csv,
)
from gateway.energy.safe_csv import CsvLimits, ImportRefused


def test_hashprice_from_inputs_hand_checked() -> None:
    # 3.125 BTC subsidy + 0.1 BTC fees, difficulty 2^32 * 1e12 / 86400 makes one TH/s earn exactly one block's
    # worth a day: (3.225 BTC) x $60,000 = $193,500.
    difficulty = Decimal(10**12) * 86400 / Decimal(2**32)
    value = hashprice_usd_per_th_day(
        subsidy_btc=Decimal("3.125"),
        fees_btc_per_block=Decimal("0.1"),
        difficulty=difficulty,
        btc_price_usd=Decimal(60000),
    )
    assert value == Decimal(193500)


def test_hashprice_realistic_magnitude() -> None:
    # mid-2024: difficulty ~83.1e12, BTC ~$60k, 3.125 + ~0.1 BTC per block -> roughly $0.045/TH/day
    value = hashprice_usd_per_th_day(
        subsidy_btc=Decimal("3.125"),
        fees_btc_per_block=Decimal("0.1"),
        difficulty=Decimal("83.1e12"),
        btc_price_usd=Decimal(60000),
    )
    assert Decimal("0.04") < value < Decimal("0.06")


@pytest.mark.parametrize(
    ("field", "value"),
    [("difficulty", Decimal(0)), ("btc_price_usd", Decimal(-1)), ("subsidy_btc", Decimal(-1))],
)
def test_hashprice_refuses_nonsense(field: str, value: Decimal) -> None:
    kwargs = {
        "subsidy_btc": Decimal("3.125"),
        "fees_btc_per_block": Decimal(0),
        "difficulty": Decimal("8e13"),
        "btc_price_usd": Decimal(60000),
    } | {field: value}
    with pytest.raises(ValueError, match=field):
        hashprice_usd_per_th_day(**kwargs)


def test_breakeven_s21_hand_checked() -> None:
    # S21: 200 TH/s, 3.5 kW. 0.045 x 200 x (1 - 0.02) / (3.5 x 24) = 8.82 / 84 = 0.105 $/kWh
    be = breakeven_per_kwh(
        hashprice=Decimal("0.045"), ths=200, kw=3.5, economics=Economics(pool_fee=Decimal("0.02"))
    )
    assert be == Decimal("0.105")


def test_breakeven_with_pue_and_adder() -> None:
    # revenue 0.105 $/kWh; with PUE 1.05 and a 0.005 adder the market may cost 0.105/1.05 - 0.005 = 0.095
    econ = Economics(pool_fee=Decimal("0.02"), pue=Decimal("1.05"), adder_per_kwh=Decimal("0.005"))
    assert breakeven_per_kwh(hashprice=Decimal("0.045"), ths=200, kw=3.5, economics=econ) == Decimal("0.095")


def test_margin_hand_checked() -> None:
    # one S19j Pro (100 TH/s, 3.05 kW) for 15 min at $0.03/kWh, hashprice 0.045, no fee:
    # value 0.045 x 100 / 96 = 0.046875; cost 3.05 x 0.25 x 0.03 = 0.022875; margin 0.024
    m = margin_usd_per_period(
        hashprice=Decimal("0.045"),
        price_per_kwh=Decimal("0.03"),
        ths=100,
        kw=3.05,
        period_s=900,
        economics=Economics(pool_fee=Decimal(0)),
    )
    assert m == Decimal("0.024")


@pytest.mark.parametrize(
    "kwargs", [{"pool_fee": Decimal(1)}, {"pool_fee": Decimal("-0.1")}, {"pue": Decimal("0.9")}]
)
def test_economics_refuses_nonsense(kwargs: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        Economics(**kwargs)


@settings(max_examples=60, deadline=None)
@given(
    hashprice=st.decimals(min_value="0.001", max_value="1", places=4),
    ths=st.integers(min_value=1, max_value=500),
    kw=st.decimals(min_value="0.5", max_value="10", places=2),
    fee=st.decimals(min_value="0", max_value="0.1", places=3),
    pue=st.decimals(min_value="1", max_value="1.5", places=2),
    adder=st.decimals(min_value="0", max_value="0.05", places=3),
)
def test_margin_changes_sign_at_breakeven(
    hashprice: Decimal, ths: int, kw: Decimal, fee: Decimal, pue: Decimal, adder: Decimal
) -> None:
    econ = Economics(pool_fee=fee, pue=pue, adder_per_kwh=adder)
    be = breakeven_per_kwh(hashprice=hashprice, ths=ths, kw=kw, economics=econ)

    def margin(price: Decimal) -> Decimal:
        return margin_usd_per_period(
            hashprice=hashprice, price_per_kwh=price, ths=ths, kw=kw, period_s=900, economics=econ
        )

    assert abs(margin(be)) < Decimal("1e-20")
    assert margin(be - Decimal("0.001")) > 0
    assert margin(be + Decimal("0.001")) < 0


def test_hashprice_series_constant_and_steps() -> None:
    assert HashpriceSeries.constant(Decimal("0.05")).at(123) == Decimal("0.05")
    series = read_hashprice_csv(b"ts,hashprice_usd_per_th_day\n1000,0.05\n2000,0.04\n")
    assert (series.at(0), series.at(1500), series.at(2000), series.at(9999)) == (
        Decimal("0.05"),
        Decimal("0.05"),
        Decimal("0.04"),
        Decimal("0.04"),
    )


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "line 1"),
        (b"ts,price\n1,0.05\n", "line 1"),
        (b"ts,hashprice_usd_per_th_day\n1000,0.05\n2000,0.0", "line 3"),  # truncated: no terminator
        (b"ts,hashprice_usd_per_th_day\n1000,abc\n", "line 2, column 2"),
        (b'ts,hashprice_usd_per_th_day\n1000,=HYPERLINK("http://x")\n', "line 2, column 2"),
        (b"ts,hashprice_usd_per_th_day\n1000,45\n2000,450\n", "line 3, column 2"),  # wrong unit
        (b"ts,hashprice_usd_per_th_day\n2000,0.05\n1000,0.05\n", "line 3, column 1"),
        (b"ts,hashprice_usd_per_th_day\n1000,0.05,1\n", "line 2"),
        (b"ts,hashprice_usd_per_th_day\n" + b"1," * 100 + b"\n", "line 2"),  # huge column count
        (b"ts,hashprice_usd_per_th_day\n1000," + b"9" * 10_000 + b"\n", "line 2"),  # huge line
        (b"ts,hashprice_usd_per_th_day\n", "no hashprice rows"),
    ],
)
def test_hashprice_csv_refusals_name_the_place(data: bytes, where: str) -> None:
    with pytest.raises(ImportRefused) as err:
        read_hashprice_csv(data)
    assert where in str(err.value)
    assert "\n" not in str(err.value)


def test_hashprice_csv_oversized_input_refused() -> None:
    rows = b"".join(f"{1000 + i},0.05\n".encode() for i in range(200))
    with pytest.raises(ImportRefused, match="exceeds"):
        read_hashprice_csv(b"ts,hashprice_usd_per_th_day\n" + rows, limits=CsvLimits(max_bytes=1000))
