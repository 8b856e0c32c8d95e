"""URDB import: each real tariff file imports, and a month of a known load priced under it matches the
hand computation written out below (counting hours per period from the 12x24 grids in the file).

The loads are constant power on a 15-minute grid, so each quarter hour is kW x 0.25 kWh and each local
hour kW x 1 kWh; the DST months show that the 23- and 25-hour days are counted on the local wall clock."""

from __future__ import annotations

import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.energy.pricing import Bill, BillingPeriod, price_load
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.tariffs import TouEnergy
from gateway.energy.tariffs_urdb import read_urdb

URDB = Path(__file__).parent.parent / "fixtures" / "energy" / "urdb"
SDGE = URDB / "San_Diego_Gas_Electric_Co_AL_TOU_Secondary_Above_500kW.json"
SCE = URDB / "SCE_TOU-8__Option-D_Under-2-kV.json"
REOPT = URDB / "REopt_multi_tier_urdb_response.json"
LA = ZoneInfo("America/Los_Angeles")
KW_15MIN_J = 900_000
D = Decimal


Load = list[tuple[int, int]]


def month_load(
    zone: ZoneInfo, year: int, month: int, kw: int, spikes: dict[int, int] | None = None
) -> tuple[BillingPeriod, Load]:
    period = BillingPeriod.month(year, month, zone)
    spikes = spikes or {}
    return period, [(t, spikes.get(t, kw) * KW_15MIN_J) for t in range(period.start, period.end, 900)]


def lines(bill: Bill) -> dict[str, Decimal]:
    return {line.label: line.amount for line in bill.lines}


def test_each_real_file_imports() -> None:
    sdge, sce = read_urdb(SDGE.read_bytes()), read_urdb(SCE.read_bytes())
    reopt = read_urdb(REOPT.read_bytes(), valid_from=0)  # a bare rate object with no startdate
    assert sdge.name == "San Diego Gas & Electric Co - AL-TOU Secondary (Above 500kW)"
    assert (sdge.valid_from, sce.valid_from) == (1727737200, 1727762400)
    assert isinstance(sdge.energy, TouEnergy) and len(sdge.energy.periods) == 6
    # rate + adj, exactly as published: 0.01874 + 0.20968
    assert sdge.energy.periods[0].tiers[0].rate == D("0.22842")
    assert sdge.demand.tou_periods[1].tiers[0].rate == D("45.61")  # demand adj too: 30.8 + 14.81
    assert (sdge.fixed.per_month, sce.fixed.per_month, reopt.fixed.per_day) == (
        D("766.91"),
        D("447.44"),
        D("3.298"),
    )
    assert sce.demand.flat_periods[0].tiers[0].rate == D("25.36")
    assert sdge.notes == ("reactive-power charge 0.25 $/kVAR not applied: the gateway meters no kVAR",)
    assert isinstance(reopt.energy, TouEnergy)
    assert [(t.rate, t.limit) for t in reopt.energy.periods[1].tiers] == [
        (D("0.078891"), 20000),
        (D("0.06"), None),
    ]
    demand_tiers = reopt.demand.tou_periods[1].tiers
    assert [(t.rate, t.limit) for t in demand_tiers] == [(D("24.368"), D("100.0")), (D("17.031"), None)]
    # every local hour of the year resolves (the schedule was validated complete when it was built)
    assert sce.energy.schedule.period_at(datetime(2025, 7, 1, 16, tzinfo=LA)) == "energy period 5"


def test_sce_tou8_july_2025_by_hand() -> None:
    """SCE TOU-8 Option D, July 2025 (Jul 1 is a Tuesday: 23 weekdays, 8 weekend days), 1,000 kW all month
    except 1,600 kW for the quarter hour Saturday 2025-07-12 17:00-17:15 PDT.

    July's grids (row 6): weekday  0-15h -> period 3, 16-20h -> period 5, 21-23h -> period 3
                          weekend  0-15h -> period 3, 16-20h -> period 4, 21-23h -> period 3
    energy  period 3: 31 days x 19 h x 1,000 kWh = 589,000 kWh x (0.11229 + 0.00114 = 0.11343) = 66,810.27
            period 5: 23 days x  5 h x 1,000 kWh = 115,000 kWh x (0.15072 + 0.00114 = 0.15186) = 17,463.90
            period 4:  8 days x  5 h x 1,000 kWh + 600 kW x 0.25 h = 40,150 kWh
                      x (0.14085 + 0.00114 = 0.14199) = 5,700.8985 -> 5,700.90
    TOU demand (July weekday 16-20h -> period 2 at $29.54; all else period 0 at $0):
            period 0 peak 1,600 kW (the Saturday spike) x 0 = 0.00
            period 2 peak 1,000 kW x 29.54 = 29,540.00
    flat demand: month peak 1,600 kW x 25.36 = 40,576.00
    fixed: 447.44 per month
    total: 66,810.27 + 17,463.90 + 5,700.90 + 0.00 + 29,540.00 + 40,576.00 + 447.44 = 160,538.51"""
    spike = int(datetime(2025, 7, 12, 17, tzinfo=LA).timestamp())
    period, load = month_load(LA, 2025, 7, 1000, {spike: 1600})
    bill = price_load(read_urdb(SCE.read_bytes()), load, period=period, tz=LA)
    assert lines(bill) == {
        "energy period 3": D("66810.27"),
        "energy period 4": D("5700.90"),
        "energy period 5": D("17463.90"),
        "demand period 0 peak demand": D("0.00"),
        "demand period 2 peak demand": D("29540.00"),
        "flat demand 0 peak demand": D("40576.00"),
        "fixed charge per month": D("447.44"),
    }
    assert bill.total == D("160538.51")
    assert bill.peak_kw == 1600 and bill.peak_window_start == spike
    assert dict(bill.energy_j_by_period)["energy period 3"] == 589_000 * 3_600_000


def test_sdge_al_tou_march_2025_by_hand_across_spring_forward() -> None:
    """SDG&E AL-TOU, March 2025 (Mar 1 is a Saturday: 21 weekdays, 10 weekend days; Sunday Mar 9 has 23
    hours - its 02:00 hour never happens), 500 kW all month.

    March's grids (row 2): weekday  0-5h p5, 6-9h p4, 10-13h p5, 14-15h p4, 16-20h p3, 21-23h p4
                                    -> p5 10 h, p4 9 h, p3 5 h
                           weekend  0-13h p5, 14-15h p4, 16-20h p3, 21-23h p4 -> p5 14 h, p4 5 h, p3 5 h
    hours   p5: 21 x 10 + 10 x 14 - 1 (the missing 02:00 on Mar 9) = 349;  p4: 21 x 9 + 10 x 5 = 239
            p3: 21 x 5 + 10 x 5 = 155;  349 + 239 + 155 = 743 = 31 x 24 - 1
    energy  p5: 349 h x 500 kW = 174,500 kWh x (0.01874 + 0.09599 = 0.11473) = 20,020.385 -> 20,020.38
                (an exact half cent: half-to-even keeps the 8)
            p4: 119,500 kWh x (0.01874 + 0.12425 = 0.14299) = 17,087.305 -> 17,087.30 (half-to-even: 0)
            p3:  77,500 kWh x (0.01874 + 0.22118 = 0.23992) = 18,593.80
    TOU demand (March: 16-20h every day -> period 2 at $32.93, else period 0 at $0):
            period 0: 500 kW x 0 = 0.00;  period 2: 500 kW x 32.93 = 16,465.00
    flat demand 500 kW x 30.63 = 15,315.00;  fixed 766.91
    total: 20,020.38 + 17,087.30 + 18,593.80 + 0.00 + 16,465.00 + 15,315.00 + 766.91 = 88,248.39"""
    period, load = month_load(LA, 2025, 3, 500)
    assert len(load) == 743 * 4
    bill = price_load(read_urdb(SDGE.read_bytes()), load, period=period, tz=LA)
    assert lines(bill) == {
        "energy period 3": D("18593.80"),
        "energy period 4": D("17087.30"),
        "energy period 5": D("20020.38"),
        "demand period 0 peak demand": D("0.00"),
        "demand period 2 peak demand": D("16465.00"),
        "flat demand 0 peak demand": D("15315.00"),
        "fixed charge per month": D("766.91"),
    }
    assert bill.total == D("88248.39")


def test_reopt_tiered_june_2025_by_hand() -> None:
    """REopt multi-tier rate, June 2025 in America/Denver (30 days, no DST change), 150 kW all month.

    June (row 5): energy period 1 every hour, tiers 0.078891 $/kWh up to 20,000 kWh, then 0.06;
                  demand period 1 every hour, tiers 24.368 $/kW up to 100 kW, then 17.031.
    energy  150 kW x 720 h = 108,000 kWh: tier 1 20,000 x 0.078891 = 1,577.82
                                         tier 2 88,000 x 0.06     = 5,280.00
    demand  150 kW: tier 1 100 x 24.368 = 2,436.80;  tier 2 50 x 17.031 = 851.55
    fixed   30 days x 3.298 $/day = 98.94
    total   1,577.82 + 5,280.00 + 2,436.80 + 851.55 + 98.94 = 10,245.11"""
    denver = ZoneInfo("America/Denver")
    period, load = month_load(denver, 2025, 6, 150)
    bill = price_load(read_urdb(REOPT.read_bytes(), valid_from=0), load, period=period, tz=denver)
    assert lines(bill) == {
        "energy period 1 tier 1": D("1577.82"),
        "energy period 1 tier 2": D("5280.00"),
        "demand period 1 tier 1 peak demand": D("2436.80"),
        "demand period 1 tier 2 peak demand": D("851.55"),
        "fixed charge per day": D("98.94"),
    }
    assert bill.total == D("10245.11")


def test_reopt_november_2025_by_hand_across_fall_back() -> None:
    """REopt rate, November 2025 in America/Chicago: 30 days but 721 hours (Nov 2 has 25), 100 kW.

    November (row 10): energy period 2 (0.061731, untiered); demand period 1 every hour.
    energy  721 h x 100 kW = 72,100 kWh x 0.061731 = 4,450.8051 -> 4,450.81
    demand  100 kW, all inside tier 1: 100 x 24.368 = 2,436.80 (no tier 2 line: nothing above 100 kW)
    fixed   30 local days x 3.298 = 98.94 (the 25-hour day is one day)
    total   4,450.81 + 2,436.80 + 98.94 = 6,986.55"""
    chicago = ZoneInfo("America/Chicago")
    period, load = month_load(chicago, 2025, 11, 100)
    assert len(load) == 721 * 4
    bill = price_load(read_urdb(REOPT.read_bytes(), valid_from=0), load, period=period, tz=chicago)
    assert lines(bill) == {
        "energy period 2": D("4450.81"),
        "demand period 1 tier 1 peak demand": D("2436.80"),
        "fixed charge per day": D("98.94"),
    }
    assert bill.total == D("6986.55")


# -------------------------------------------------------------------------------- casing, variants, refusals


def minimal(**extra: object) -> dict[str, object]:
    flat = [[0] * 24 for _ in range(12)]
    return {
        "energyratestructure": [[{"rate": 0.1, "unit": "kWh"}]],
        "energyweekdayschedule": flat,
        "energyweekendschedule": flat,
        "startdate": 0,
        **extra,
    }


def test_key_casing_is_normalised_and_minimum_charge_read() -> None:
    rate = minimal(MinCharge=50, minChargeUnits="$/month", FixedChargeFirstMeter=1, FIXEDCHARGEUNITS="$/day")
    rate["EnergyRateStructure"] = rate.pop("energyratestructure")
    tariff = read_urdb(json.dumps({"items": [rate]}))
    assert tariff.minimum is not None and tariff.minimum.amount == 50 and tariff.minimum.per == "month"
    assert tariff.fixed.per_day == 1
    period = BillingPeriod.month(2025, 2, "UTC")
    bill = price_load(tariff, [(period.start, 3_600_000)], period=period, tz="UTC")
    # 1 kWh x 0.1 = 0.10; 28 days x $1 = 28.00; minimum 50.00 -> top-up 21.90
    assert lines(bill) == {
        "energy period 0": D("0.10"),
        "fixed charge per day": D("28.00"),
        "minimum charge (50.00 per billing period)": D("21.90"),
    }


def where(body: str | bytes, **kwargs: object) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        read_urdb(body, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_refusals_name_line_column_and_path() -> None:
    text = json.dumps(minimal(), indent=1)
    bad = text.replace('"rate": 0.1', '"rate": 10.5')  # cents written as dollars
    err = where(bad)
    assert "$.energyratestructure[0][0].rate" in str(err) and "implausible" in str(err)
    line = bad.splitlines()[err.line - 1]  # type: ignore[operator]
    assert line[err.column - 1 :].startswith("10.5")  # type: ignore[operator]
    err = where(text.replace('"unit": "kWh"', '"unit": "kWh daily"'))
    assert "wrong units" in str(err) and err.line is not None
    err = where(
        json.dumps(
            minimal(flatdemandstructure=[[{"rate": 5}]], flatdemandmonths=[0] * 12, flatDemandUnits="kVA")
        )
    )
    assert "$.flatdemandunits" in str(err) and "wrong units" in str(err)
    short = minimal()
    short["energyweekendschedule"] = [[0] * 23 for _ in range(12)]
    assert "$.energyweekendschedule[0]: expected a list of 24" in str(where(json.dumps(short)))
    err = where(json.dumps(minimal(energyweekdayschedule=[[1] * 24] * 12)))
    assert "period index 1 is not 0..0" in str(err)
    assert "ratchet" in str(where(json.dumps(minimal(lookbackmonths=[1] * 12))))
    assert "$/year" in str(where(json.dumps(minimal(fixedchargefirstmeter=1, fixedchargeunits="$/year"))))
    assert "disagrees" in str(where(json.dumps(minimal(demandwindow=30))))
    assert read_urdb(json.dumps(minimal(demandwindow=30)), demand_interval_s=1800).demand.interval_s == 1800
    assert "no startdate" in str(where(json.dumps({k: v for k, v in minimal().items() if k != "startdate"})))


def test_hostile_and_malformed_json() -> None:
    err = where('{"energyratestructure": [[{"rate": 0.1,}]]}')
    assert err.line == 1 and err.column is not None and "malformed JSON" in str(err)
    assert "NaN" in str(where('{"energyratestructure": [[{"rate": NaN}]]}'))
    assert "appears twice" in str(where('{"Name": "a", "name": "b"}'))
    assert "nested" in str(where("[" * 100_000 + "]" * 100_000))
    deep: object = 1
    for _ in range(14):
        deep = [deep]
    assert "nested deeper" in str(where(json.dumps(minimal(x=deep))))
    assert "larger than" in str(where(b" " * (4 * 1024 * 1024 + 1)))
    endless = io.BytesIO(b"[" + b"0," * (3 * 1024 * 1024))  # a stream is read only up to the limit + 1
    assert "larger than" in str(where(endless))
    assert endless.tell() == 4 * 1024 * 1024 + 1
    assert "formula" in str(where(json.dumps(minimal(name="=cmd|' /C calc'!A0"))))
    assert "not UTF-8" in str(where(b'{"name": "\xff"}'))
    assert "2 rates in items" in str(where(json.dumps({"items": [minimal(), minimal()]})))
    assert read_urdb(json.dumps({"items": [minimal(), minimal(name="second")]}), item=1).name == "second"
    assert "expected an object" in str(where("[1, 2]"))
