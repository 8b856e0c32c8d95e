"""Vnish parser against every captured reply in fixtures/devices/vnish: an S21 Pro on Vnish 1.2.7, auto-
tuning on preset 2800 W (configured 3160 W). Expected values were read off the files by hand."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devices.errors import ProtocolError
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.parsers import cgminer as cg
from gateway.devices.parsers.vnish import PARSER, power_target_range, preset_watts
from gateway.devices.profiles import MinerProfile
from tests.devices.capture import FIXTURES, PROFILES, capture, ctx, reply

RPC_FILES = {
    "summary": "s21pro_rpc_summary.json",
    "stats": "s21pro_rpc_stats.json",
    "pools": "s21pro_rpc_pools.json",
    "devdetails": "s21pro_rpc_devdetails.json",
    "version": "s21pro_rpc_version_invalid_command.json",  # E, Code 0, "Invalid command" on 1.2.7
}
WEB_FILES = {
    "web:info": "s21pro_web_api_v1_info.json",
    "web:summary": "s21pro_web_api_v1_summary.json",
    "web:perf-summary": "s21pro_web_api_v1_perf-summary.json",
    "web:settings": "s21pro_web_api_v1_settings.json",
    "web:autotune_presets": "s21pro_web_api_v1_autotune_presets.json",
}


def profile() -> MinerProfile:
    found = PROFILES.match("Antminer", "S21 Pro")
    assert found is not None
    return found


def rpc() -> dict[str, Any]:
    return capture("vnish", **RPC_FILES)


def web() -> dict[str, Any]:
    return capture("vnish", **WEB_FILES)


def both() -> dict[str, Any]:
    return rpc() | web()


def test_every_vnish_capture_is_exercised() -> None:
    on_disk = {p.name for p in (FIXTURES / "vnish").glob("*.json")}
    assert on_disk == set(RPC_FILES.values()) | set(WEB_FILES.values())
    assert len(on_disk) == 10


def test_rpc_and_web_totals() -> None:
    sample = PARSER.parse(both(), ctx())
    assert sample.status is MinerStatus.MINING  # state "auto-tuning" while hashing
    assert sample.hashrate_ths == pytest.approx(173.87094)  # SUMMARY GHS 5s
    assert sample.hashrate_avg_ths == pytest.approx(174.37475)  # GHS av
    assert sample.expected_ths == pytest.approx(196.51717)  # STATS total_rateideal
    assert sample.expected_ths_source is Source.MEASURED
    assert (sample.power_w, sample.power_source) == (2583.0, Source.MEASURED)  # web power_consumption
    assert sample.power_limit_w == 2800.0  # running preset (perf-summary), not the configured 3160
    assert sample.mode is Mode.LOW  # tuned for 196.5 TH/s against the 237.1 TH/s stock (hr_stock)
    assert sample.uptime_s == 4423
    assert (sample.accepted, sample.rejected, sample.hw_errors) == (1823, 10, 57)
    assert sample.errors == ()  # the "Invalid command" version reply is not an error


def test_rpc_boards_from_numbered_stats_keys() -> None:
    sample = PARSER.parse(both(), ctx())
    boards = sample.boards
    assert [b.slot for b in boards] == [1, 2, 3]  # chain 1..3, as stock numbers them
    assert [b.hashrate_ths for b in boards] == pytest.approx(
        [60.79719, 57.766645, 55.3071]
    )  # chain_rateN GH/s
    assert [b.expected_ths for b in boards] == pytest.approx([65.505727] * 3)
    assert [b.temp_chip_c for b in boards] == [65.0, 64.0, 64.0]  # temp_chipN "65-55-65-65"
    assert [b.temp_board_c for b in boards] == [50.0, 49.0, 49.0]  # temp_pcbN
    assert [b.chips_ok for b in boards] == [65, 65, 65]
    assert [b.chips_expected for b in boards] == [profile().chips_per_board] * 3
    assert [b.hw_errors for b in boards] == [29, 20, 8]
    assert sample.fans_rpm == (5850, 5850, 5940, 5940)  # fan1..4; fan_num/fan_mode/fan_pwm are not fans
    assert (sample.inlet_c, sample.outlet_c) == (None, None)
    counted = both()
    counted["stats"]["STATS"][1] |= {"fan_num": 7, "temp_num": 5}
    assert PARSER.parse(counted, ctx()).fans_rpm == sample.fans_rpm


def test_temp_sens_m_is_missing_not_a_reading() -> None:
    no_chip = rpc()
    stats = no_chip["stats"]["STATS"][1]
    for n in (1, 2, 3):
        del stats[f"temp_chip{n}"]
    assert stats["temp_sens1"] == "m-m-m-m"
    assert [b.temp_chip_c for b in PARSER.parse(no_chip, ctx()).boards] == [None, None, None]


def test_pools_skip_the_fee_pool() -> None:
    sample = PARSER.parse(both(), ctx())
    assert sample.pool_url == "stratum.braiins.com:3333"  # Vnish sends no scheme; kept as reported
    assert [(p.url, p.active) for p in sample.pools] == [
        ("stratum.braiins.com:3333", True),
        ("stratum.braiins.com:3333", False),
        ("DevFee", True),
    ]
    assert sample.last_share_ts == 1773783708  # "0:00:05" ago at When 1773783713; not the DevFee pool's
    assert sample.pools[2].last_share_ts == 1773783699
    assert sample.pools[1].last_share_ts is None  # "0": never


def test_rpc_alone_sums_chain_consumption() -> None:
    sample = PARSER.parse(rpc(), ctx())
    assert (sample.power_w, sample.power_source) == (2583.0, Source.MEASURED)  # 3 x 861 W
    assert sample.power_limit_w is None
    stock = profile().nominal_ths
    assert sample.mode is cg.classify_mode(196.51717, stock)
    identity = sample.identity
    assert identity is not None
    assert (identity.model, identity.firmware_version, identity.mac) == ("S21 Pro", "1.2.7", None)


def test_web_alone_still_makes_a_sample() -> None:
    sample = PARSER.parse(web(), ctx())
    assert sample.hashrate_ths == pytest.approx(173.87094)  # hr_realtime GH/s
    assert sample.hashrate_avg_ths == pytest.approx(174.37475)
    assert (sample.power_w, sample.power_source) == (2583.0, Source.MEASURED)
    boards = sample.boards
    assert [b.slot for b in boards] == [1, 2, 3]  # chains[].id
    assert [b.hashrate_ths for b in boards] == pytest.approx([60.79719, 57.766645, 55.3071])  # hashrate_rt
    assert [b.temp_chip_c for b in boards] == [65.0, 64.0, 64.0]  # chip_temp.max
    assert [b.temp_board_c for b in boards] == [50.0, 49.0, 49.0]
    assert [b.chips_ok for b in boards] == [65, 65, 65]  # red + orange + grey
    assert sample.fans_rpm == (5880, 5880, 5940, 5940)
    assert (sample.accepted, sample.rejected) == (1823, 10)  # summed over pools, as SUMMARY does
    assert sample.pool_url == "stratum.braiins.com:3333"
    assert sample.uptime_s is None  # miner_state_time restarts at each state change: not an uptime


def test_presets_settings_and_ranges() -> None:
    assert preset_watts(web()) == 2800.0
    assert preset_watts({"web:settings": reply("vnish/s21pro_web_api_v1_settings.json")}) == 3160.0
    stock = web()
    stock["web:perf-summary"]["current_preset"]["name"] = "disabled"
    assert preset_watts(stock) is None
    assert power_target_range(reply("vnish/s21pro_web_api_v1_autotune_presets.json")) == (2550, 4690)


@pytest.mark.parametrize(
    ("state", "status", "mode"),
    [
        ("stopped", MinerStatus.SLEEPING, Mode.SLEEP),
        ("paused", MinerStatus.SLEEPING, Mode.SLEEP),
        ("failure", MinerStatus.ERROR, Mode.LOW),
        ("mining", MinerStatus.MINING, Mode.LOW),
    ],
)
def test_miner_state(state: str, status: MinerStatus, mode: Mode) -> None:
    changed = both()
    changed["stats"]["STATS"][1]["state"] = state
    changed["web:summary"]["miner"]["miner_status"]["miner_state"] = state
    sample = PARSER.parse(changed, ctx())
    assert (sample.status, sample.mode) == (status, mode)
    if status is MinerStatus.SLEEPING:
        assert not any(b.active for b in sample.boards)


def test_identity_despite_the_invalid_version_reply() -> None:
    identity = PARSER.identify(both(), ctx())
    assert identity.make == "Antminer"
    assert identity.model == "S21 Pro"
    assert identity.firmware is FirmwareFamily.VNISH
    assert identity.firmware_version == "1.2.7"
    assert identity.mac == "02:95:23:B3:E0:79"
    assert identity.hostname == "Antminer"
    assert identity.serial is None  # "N/A"
    assert identity.profile_key == profile().key
    rpc_only = capture("vnish", version=RPC_FILES["version"], devdetails=RPC_FILES["devdetails"])
    assert PARSER.identify(rpc_only, ctx()).model == "S21 Pro"  # DEVDETAILS Name "BTM_S21PRO"


def test_identity_failure_costs_no_sample() -> None:
    invalid = rpc()["version"]
    telemetry_only = {
        "summary": rpc()["summary"],
        "stats": invalid,
        "devdetails": invalid,
        "version": invalid,
    }
    sample = PARSER.parse(telemetry_only, ctx())
    assert sample.identity is None
    assert sample.hashrate_ths == pytest.approx(173.87094)


def test_no_usable_data() -> None:
    with pytest.raises(ProtocolError, match=r"summary.*web:summary"):
        PARSER.parse({"pools": rpc()["pools"]}, ctx())
    with pytest.raises(ProtocolError):
        PARSER.identify({"version": rpc()["version"]}, ctx())
    with pytest.raises(ProtocolError, match="Invalid command"):
        PARSER.parse(rpc() | {"summary": rpc()["version"]}, ctx())


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        ("Antminer S21 Pro (Vnish 1.2.7)", "S21 Pro"),
        ("s21pro", "S21 Pro"),
        ("BTM_S21PRO", "S21 Pro"),
        ("Antminer S19k Pro", "S19k Pro"),
        ("S19KPRO", "S19k Pro"),
        ("S19XP", "S19 XP"),
        ("S19j Pro+", "S19j Pro+"),
        ("S21+", "S21+"),
        ("Antminer S9", "S9"),
        ("", None),
        (None, None),
    ],
)
def test_model_names(raw: Any, model: str | None) -> None:
    assert cg.antminer_model(raw) == model
    if model:
        assert cg.antminer_model(model) == model  # idempotent


def test_mac_normalization() -> None:
    assert cg.normalize_mac("62f75eb71046") == "62:F7:5E:B7:10:46"
    assert cg.normalize_mac("02:8f:77:ec:e7:e0") == "02:8F:77:EC:E7:E0"
    assert cg.normalize_mac("N/A") is None
