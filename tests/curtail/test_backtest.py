"""`hashinsight curtail backtest` and `plan` on a real ERCOT slice (2024-08-19..21, with the 08-20 spike)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.curtail.backtest import BacktestConfig, auto_cp_windows, fleet_classes, run_backtest
from gateway.curtail.backtest_cp import cp_alerts, day_window
from gateway.devices.profiles import load_profiles
from gateway.energy.prices import read_local_grid
from gateway.energy.tariffs import PriceSeries

SLICE = Path(__file__).parents[1] / "fixtures" / "curtail" / "ercot_hb_south_15min_2024-08-19_21.csv"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["curtail", *args])
    return result.exit_code, result.stdout, result.stderr


def test_fleet_figures_come_from_the_firmware_profiles() -> None:
    classes = fleet_classes(load_profiles(), {"S21": 250, "S19j Pro": 250, "M30S+": 250, "S19 XP": 250})
    assert [(c.key, c.count, c.ths_per_miner, c.kw_per_miner) for c in classes] == [
        ("S21:normal", 250, 200.0, 3.5),
        ("S19j Pro:normal", 250, 100.0, 3.05),
        ("M30S+:normal", 250, 100.0, 3.4),
        ("S19 XP:normal", 250, 140.0, 3.01),
    ]
    with pytest.raises(KeyError, match="S99"):
        fleet_classes(load_profiles(), {"S99": 1})


def test_backtest_json_on_the_real_slice() -> None:
    code, out, err = invoke("backtest", "--prices", str(SLICE), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"ours", "strike_rule", "always_on"}
    for name in ("ours", "strike_rule", "always_on"):
        for key in ("net_margin_usd", "energy_kwh", "violations"):
            assert key in result[name]
    assert result["ours"]["violations"] == 0
    assert result["always_on"]["violations"] == 0
    assert result["strike_rule"]["violations"] > 0  # it flaps around the spike and ignores the ramp
    # always on: 3,240 kW for 72 h, exactly
    assert Decimal(result["always_on"]["energy_kwh"]) == Decimal(3240 * 72)
    # like for like - the rule held to the same ramp and minimum on/off times - ours earns more; the
    # plain rule breaks those limits 34 times and earns more on this spike slice (see the closing note)
    assert result["strike_rule_safe"]["violations"] == 0
    assert Decimal(result["ours"]["net_margin_usd"]) >= Decimal(result["strike_rule_safe"]["net_margin_usd"])
    assert result["ours"]["solves"]["fallbacks"] == 0
    assert len(result["cp_windows"]) == 1  # one month in the slice: one charged 4CP window
    assert result["forecast"] == "dam" and result["day_ahead_column"] == "HB_SOUTH_DAM"
    assert result["cp_true_days"] == ["2024-08-20"]
    assert result["cp_alert_days"] == ["2024-08-19", "2024-08-20"] and result["cp_true_days_alerted"] == 1
    for name in ("ours", "strike_rule", "always_on"):
        s = result[name]
        before, net, cp = (
            Decimal(s[k]) for k in ("margin_before_cp_usd", "net_margin_usd", "peak_charges_usd")
        )
        assert abs(before - cp - net) <= Decimal("0.01")
    # always-on ignores alerts and pays the true peak: 3,240 kW x $15
    assert Decimal(result["always_on"]["peak_charges_usd"]) == Decimal(48600)
    assert Decimal(result["strike_rule"]["peak_charges_usd"]) == 0  # it was alerted and curtailed fully


def test_backtest_without_day_ahead_prices_has_no_alerts() -> None:
    code, out, err = invoke(
        "backtest", "--prices", str(SLICE), "--days", "1", "--dam-column", "none", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["forecast"] == "profile" and result["day_ahead_column"] is None
    assert result["cp_alert_days"] == [] and result["cp_true_days"] == ["2024-08-19"]  # truth from RTM
    code, _, err = invoke("backtest", "--prices", str(SLICE), "--dam-column", "none", "--forecast", "dam")
    assert code == 2 and "day-ahead column" in err
    code, _, err = invoke("backtest", "--prices", str(SLICE), "--dam-column", "NOPE")
    assert code == 1 and "no column 'NOPE'" in err


def test_decisions_never_see_the_charged_windows() -> None:
    """Moving the (hindsight) charged window changes what is charged, never what any strategy does."""
    rtm = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_RTM")
    dam = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_DAM")
    classes = fleet_classes(load_profiles(), {"S21": 4, "M30S+": 4})
    zone = ZoneInfo("America/Chicago")
    alerts = cp_alerts(dam, tz="America/Chicago", charge_per_kw=Decimal(15))
    results = []
    for day in (date(2024, 8, 20), date(2024, 8, 21)):
        truth = (day_window(day, zone=zone, hours=(16, 18), charge_per_kw=Decimal(15)),)
        cfg = BacktestConfig(
            classes=classes, ramp_kw_per_period=10.0, windows=truth, alerts=alerts, tz="America/Chicago",
            forecast="dam", replan_every=16,
        )  # fmt: skip
        results.append(run_backtest(rtm, cfg, day_ahead=dam))
    a, b = results
    for name in ("ours", "strike_rule", "always_on"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert (sa.energy_kwh, sa.margin_before_cp_usd) == (sb.energy_kwh, sb.margin_before_cp_usd)
    assert a.ours.peak_charges_usd == 0  # 08-20 was alerted: the planner curtailed it fully
    assert b.ours.peak_charges_usd > 0  # 08-21 was not alerted: the load that ran then is charged
    assert a.ours.violations == 0 and b.ours.violations == 0


def test_backtest_table_and_cbc() -> None:
    code, out, err = invoke("backtest", "--prices", str(SLICE), "--days", "1", "--solver", "cbc")
    assert code == 0, err
    assert "net margin, USD" in out and "strike_rule" in out and "violations" in out
    # the true 4CP day comes from the day-ahead column of the whole file (one per month), charged only
    assert "charged on the true days: none in these days (0 of 0 alerted)" in out  # 08-20 is not in
    assert "4CP alert days (1): 2024-08-19" in out
    assert "margin before 4CP, USD" in out


def test_backtest_library_accounts_for_every_period() -> None:
    rtm = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_RTM")
    dam = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_DAM")
    day = PriceSeries(interval_s=900, starts=rtm.starts[:96], prices_per_kwh=rtm.prices_per_kwh[:96])
    classes = fleet_classes(load_profiles(), {"S21": 5, "M30S+": 5})
    cfg = BacktestConfig(
        classes=classes, ramp_kw_per_period=10.0, windows=auto_cp_windows(dam, tz="America/Chicago")
    )
    result = run_backtest(day, cfg)
    assert result.periods == 96
    assert result.ours.violations == 0
    assert result.always_on.energy_kwh == Decimal("34.5") * 24
    ours = result.ours
    # each line is rounded once, on its own: the parts may differ from the net by a cent
    parts = ours.mining_value_usd - ours.energy_cost_usd - ours.peak_charges_usd
    assert abs(ours.net_margin_usd - parts) <= Decimal("0.01")


def test_backtest_refuses_a_gap() -> None:
    rtm = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_RTM")
    gappy = PriceSeries(
        interval_s=900, starts=rtm.starts[:2] + rtm.starts[3:6], prices_per_kwh=rtm.prices_per_kwh[:5]
    )
    cfg = BacktestConfig(classes=fleet_classes(load_profiles(), {"S21": 1}))
    with pytest.raises(ValueError, match="gap"):
        run_backtest(gappy, cfg)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'interval_start_local,HB_SOUTH_DAM,HB_SOUTH_RTM\n2024-08-19 00:00:00,1,=HYPERLINK("x")\n',
            "line 2, column 3",
        ),
        (b"interval_start_local,HB_SOUTH_DAM,HB_SOUTH_RTM\n2024-08-19 00:00:00,1,2", "truncated"),
        (b"interval_start_local,HB_SOUTH_DAM\n2024-08-19 00:00:00,1\n", "no column 'HB_SOUTH_RTM'"),
        (
            b"interval_start_local,HB_SOUTH_DAM,HB_SOUTH_RTM\n2024-08-19 00:00:00,1," + b"9" * 5000 + b"\n",
            "line 2",
        ),
        (b"interval_start_local,HB_SOUTH_DAM,HB_SOUTH_RTM\n" + b"x," * 200 + b"\n", "more than 64 columns"),
    ],
)
def test_bad_price_files_exit_1_with_one_line(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_bytes(body)
    code, _, err = invoke("backtest", "--prices", str(path))
    assert code == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--fleet", "S21"],
        ["--fleet", "S99=3"],
        ["--forecast", "crystal"],
        ["--hashprice", "lots"],
        ["--cp-hours", "18-16"],
        ["--pue", "0.5"],
        ["--persist", "1"],
        ["--persist", "-0.1"],
        ["--debias-days", "-1"],
        ["--cp-day", "2024-13-01"],
    ],
)
def test_bad_flags_exit_2(args: list[str]) -> None:
    code, _, err = invoke("backtest", "--prices", str(SLICE), *args)
    assert code == 2, err
    assert "Traceback" not in err


def test_help_teaches() -> None:
    code, out, _ = invoke("backtest", "--help")
    assert code == 0
    assert "Example" in out and "$/TH/day" in out and "kW" in out
    assert "alert" in out and "13:30" in out and "--dam-column" in out


def test_plan_command_prints_reasons_and_json() -> None:
    code, out, err = invoke("plan", "--prices", str(SLICE), "--at", "2024-08-20 19:30")
    assert code == 0, err
    assert out.startswith("optimal (highs")
    assert "price 4.8578 $/kWh; ramp-limited; above breakeven of 4 class(es)" in out
    code, out, err = invoke(
        "plan", "--prices", str(SLICE), "--at", "2024-08-20 19:30", "--json", "--site-cap-kw", "1000"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["status"] == "fallback:infeasible configuration"
    assert "below the minimum load" in plan["explanation"]
    assert len(plan["periods"]) == 96
    code, _, err = invoke("plan", "--prices", str(SLICE), "--at", "2030-01-01 00:00")
    assert code == 1 and "outside the price file" in err


def test_forced_cp_day_is_charged_and_known_to_both() -> None:
    code, out, err = invoke(
        "backtest", "--prices", str(SLICE), "--days", "1", "--cp-day", "2024-08-19", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["cp_true_days"] == result["cp_alert_days"] == ["2024-08-19"]
    for name in ("ours", "strike_rule", "strike_rule_safe"):
        assert Decimal(result[name]["peak_charges_usd"]) == 0  # known ahead: all were off at 16:00-18:00
    assert Decimal(result["always_on"]["peak_charges_usd"]) == Decimal(48600)
