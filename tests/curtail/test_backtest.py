"""`hashinsight curtail backtest` and `plan` on a real ERCOT slice (2024-08-19..21, with the 08-20 spike)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.curtail.backtest import BacktestConfig, auto_cp_windows, fleet_classes, run_backtest
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
    assert Decimal(result["ours"]["net_margin_usd"]) >= Decimal(result["strike_rule"]["net_margin_usd"])
    assert result["ours"]["solves"]["fallbacks"] == 0
    assert len(result["cp_windows"]) == 1  # one month in the slice: one 4CP window


def test_backtest_table_and_cbc() -> None:
    code, out, err = invoke("backtest", "--prices", str(SLICE), "--days", "1", "--solver", "cbc")
    assert code == 0, err
    assert "net margin, USD" in out and "strike_rule" in out and "violations" in out
    # the 4CP day is picked from the day-ahead column of the whole file (one per month)
    assert "4CP window 2024-08-20 16:00-18:00" in out


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
