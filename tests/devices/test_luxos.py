"""LuxOS parser against every captured reply in fixtures/devices/luxos: an S19k Pro on LUXminer 2025.4.8,
running the underclocked "290MHz" profile. Expected values were read off the files by hand."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devices.errors import ProtocolError
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.parsers import cgminer as cg
from gateway.devices.parsers.luxos import PARSER
from gateway.devices.profiles import MinerProfile
from tests.devices.capture import FIXTURES, PROFILES, capture, ctx

FILES = {key: f"s19kpro_{suffix}.json" for key, suffix in PARSER.command_keys.items()}


def profile() -> MinerProfile:
    found = PROFILES.match("Antminer", "S19k Pro")
    assert found is not None
    return found


def s19kpro(*without: str) -> dict[str, Any]:
    return capture("luxos", **{k: v for k, v in FILES.items() if k not in without})


def test_every_luxos_capture_is_exercised() -> None:
    assert {p.name for p in (FIXTURES / "luxos").glob("*.json")} == set(FILES.values())
    assert len(FILES) == 10


def test_totals_use_the_5s_rate_and_the_firmwares_watts() -> None:
    sample = PARSER.parse(s19kpro(), ctx())
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(59.75606)  # GHS 5s
    assert sample.hashrate_avg_ths == pytest.approx(56.91791)  # GHS av
    assert sample.expected_ths == pytest.approx(3 * 20.6514)  # DEVS Nominal MHS
    assert sample.expected_ths_source is Source.MEASURED
    assert (sample.power_w, sample.power_source) == (1051.0, Source.MEASURED)  # POWER Watts
    # No ActualPowerTarget in this build: the running profile ("290MHz", 1188 W) is the power target.
    assert sample.power_limit_w == 1188.0
    assert sample.uptime_s == 3453
    assert (sample.accepted, sample.rejected, sample.hw_errors) == (1483, 1, 0)
    assert sample.errors == ()


def test_boards_come_from_devs_not_from_the_stats_averages() -> None:
    boards = PARSER.parse(s19kpro(), ctx()).boards
    assert [b.slot for b in boards] == [1, 2, 3]  # DEVS ID 0..2 (arriving as 2, 0, 1) = STATS chain 1..3
    # DEVS MHS 5s; STATS chain_rate1..3 (18910.28 ...) are the since-boot averages and must not be used
    assert [b.hashrate_ths for b in boards] == pytest.approx(
        [19.77382571692016, 19.2305887466751, 20.751652263361264]
    )
    assert [b.expected_ths for b in boards] == pytest.approx([20.6514] * 3)
    assert [b.serial for b in boards] == ["JYZZYRSBDJEBI06Z5", "JYZZYRSBDJEBI06ZM", "JYZZYRSBDJEBI06ZR"]
    assert [b.chips_ok for b in boards] == [77, 77, 77]  # STATS chain_acn1..3
    assert [b.chips_expected for b in boards] == [profile().chips_per_board] * 3
    assert [b.temp_chip_c for b in boards] == [47.0, 47.0, 47.0]  # STATS temp_chipN max
    assert [b.temp_board_c for b in boards] == [47.0, 47.0, 47.0]  # TEMPS max of four PCB sensors
    assert [b.hw_errors for b in boards] == [0, 0, 0]
    assert all(b.active for b in boards)


def test_temps_fans_and_air_sides_by_metadata_label() -> None:
    sample = PARSER.parse(s19kpro(), ctx())
    assert sample.fans_rpm == (1920, 1920, 2340, 2340)  # FANS by ID
    assert sample.inlet_c == 33.0  # lowest "Board Intake" sensor (board 1)
    assert sample.outlet_c == 47.0  # highest "Board Exhaust" sensor


def test_pools_with_hh_mm_ss_share_times() -> None:
    sample = PARSER.parse(s19kpro(), ctx())
    assert sample.pool_url == "stratum+tcp://ca.stratum.braiins.com:3333"
    assert [p.active for p in sample.pools] == [True, False, True, False]  # two groups hash at once
    assert [p.status for p in sample.pools] == ["Alive", "Dead", "Alive", "Dead"]
    # "00:00:01" ago at When 1760242394; "00:57:33" with Accepted 0 is time since boot: never
    assert [p.last_share_ts for p in sample.pools] == [1760242393, None, 1760242393, None]
    assert sample.last_share_ts == 1760242393
    assert [p.user for p in sample.pools] == [
        "asic-rs.user1",
        "asic-rs.user1",
        "asic-rs.user2",
        "asic-rs.user2",
    ]


def test_mode_from_the_active_profile() -> None:
    # "290MHz" targets 59.8 TH/s against the 121.8 TH/s nameplate: low
    assert PARSER.parse(s19kpro(), ctx()).mode is Mode.LOW
    # without the profile table, ProfileStep -12 (below the stock step 0) says the same
    assert PARSER.parse(s19kpro("profiles"), ctx()).mode is Mode.LOW
    stock = s19kpro()
    stock["config"]["CONFIG"][0]["Profile"] = "default"
    assert PARSER.parse(stock, ctx()).mode is Mode.NORMAL


def test_power_limit_is_the_running_profiles_watts_unless_the_firmware_says() -> None:
    assert PARSER.parse(s19kpro(), ctx()).power_limit_w == 1188.0  # "290MHz"
    assert PARSER.parse(s19kpro("profiles"), ctx()).power_limit_w is None  # no table, no watts
    newer = s19kpro()
    newer["config"]["CONFIG"][0]["ActualPowerTarget"] = 1500  # newer LUXminer builds report it
    assert PARSER.parse(newer, ctx()).power_limit_w == 1500.0
    unknown = s19kpro()
    unknown["config"]["CONFIG"][0]["Profile"] = "custom-profile"
    assert PARSER.parse(unknown, ctx()).power_limit_w is None


def test_curtailed_miner_is_sleeping() -> None:
    asleep = s19kpro()
    asleep["config"]["CONFIG"][0] |= {"CurtailMode": "Sleep", "IsPowerSupplyOn": False}
    asleep["summary"]["SUMMARY"][0]["GHS 5s"] = 0.0
    asleep["power"]["POWER"][0]["Watts"] = 0
    sample = PARSER.parse(asleep, ctx())
    assert (sample.status, sample.mode) == (MinerStatus.SLEEPING, Mode.SLEEP)
    assert sample.hashrate_ths == 0.0  # a real reading: it is asleep
    assert (sample.power_w, sample.power_source) == (profile().sleep_w, Source.ESTIMATED)
    assert not any(b.active for b in sample.boards)

    psu_off_only = s19kpro()
    psu_off_only["config"]["CONFIG"][0]["IsPowerSupplyOn"] = False
    assert PARSER.parse(psu_off_only, ctx()).status is MinerStatus.SLEEPING


def test_without_power_the_profile_estimates() -> None:
    sample = PARSER.parse(s19kpro("power"), ctx())
    expected = profile().estimate_power_w(sample.hashrate_ths, Mode.LOW)
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(round(expected or 0, 1))


def test_identity() -> None:
    identity = PARSER.identify(s19kpro(), ctx())
    assert identity.make == "Antminer"
    assert identity.model == "S19k Pro"
    assert identity.firmware is FirmwareFamily.LUXOS
    assert identity.firmware_version == "2025.4.8.220305-57b389c7"
    assert identity.api_version == "3.7"
    assert identity.mac == "62:F7:5E:B7:10:46"
    assert identity.serial == "JYZZB0UBDJABF06RB"
    assert identity.hostname == "UrlacherS19k"
    assert identity.profile_key == profile().key
    # stats alone: model from STATS[0] Type, MAC from miner_id "62f75eb71046"
    from_stats = PARSER.identify(capture("luxos", stats=FILES["stats"]), ctx())
    assert (from_stats.model, from_stats.mac, from_stats.firmware_version) == (
        "S19k Pro",
        "62:F7:5E:B7:10:46",
        "2025.4.8.220305",
    )


def test_optional_error_replies_are_noted_not_fatal() -> None:
    broken = s19kpro()
    broken["temps"] = {
        "STATUS": [{"STATUS": "E", "When": 1, "Code": 99, "Msg": "sensor bus", "Description": "x"}]
    }
    sample = PARSER.parse(broken, ctx())
    assert sample.errors == ("temps: firmware error 99: sensor bus",)
    assert sample.inlet_c is None
    assert [b.temp_board_c for b in sample.boards] == [None, None, None]


def test_no_usable_data() -> None:
    with pytest.raises(ProtocolError, match="summary"):
        PARSER.parse(s19kpro("summary"), ctx())
    with pytest.raises(ProtocolError, match="version"):
        PARSER.identify({"pools": s19kpro()["pools"]}, ctx())


@pytest.mark.parametrize(
    ("value", "when", "accepted", "expected"),
    [
        (1612231141, None, None, 1612231141),  # BOSminer: epoch
        ("00:00:01", 1760242394, 724, 1760242393),  # LUXminer: ago
        ("0:00:05", 1773783713, 1599, 1773783708),  # Vnish: ago, one-digit hours
        ("00:57:33", 1760242394, 0, None),  # never shared: time since boot
        ("0", 1773783713, 0, None),  # Vnish: never
        (0, None, None, None),
        ("garbage:x", 1, 1, None),
    ],
)
def test_share_time(value: Any, when: int | None, accepted: int | None, expected: int | None) -> None:
    assert cg.share_time(value, when, accepted) == expected
