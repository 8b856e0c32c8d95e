"""Braiins OS parser against every captured reply in fixtures/devices/braiins: an S9 on BOSminer+ (RPC)
and an S21 Pro on BOS 26.04 (REST). Expected values were read off the files by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.devices.errors import AuthFailed, ProtocolError
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.parsers.braiins import PARSER
from gateway.devices.profiles import MinerProfile
from tests.devices.capture import FIXTURES, PROFILES, capture, ctx

S9_FILES = {
    "summary": "s9_bosminer_plus_summary.json",
    "devs": "s9_bosminer_plus_devs.json",
    "pools": "s9_bosminer_plus_pools.json",
    "fans": "s9_bosminer_plus_fans.json",
    "temps": "s9_bosminer_plus_temps.json",
    "version": "s9_bosminer_plus_version.json",
}
REST_FILES = {
    key: f"bos_26_04_s21pro_{suffix}.json"
    for key, suffix in PARSER.command_keys.items()
    if key.startswith("rest:")
}


def profile(model: str) -> MinerProfile:
    found = PROFILES.match("Antminer", model)
    assert found is not None, f"firmware_profiles has no Antminer {model}"
    return found


def s9() -> dict[str, Any]:
    return capture("braiins", **S9_FILES)


def s21pro() -> dict[str, Any]:
    return capture("braiins", **REST_FILES)


def test_every_braiins_capture_is_exercised() -> None:
    on_disk = {p.name for p in (FIXTURES / "braiins").glob("*.json")}
    assert on_disk == set(S9_FILES.values()) | set(REST_FILES.values())
    assert len(on_disk) == 13


# --- S9, BOSminer+ RPC -----------------------------------------------------------------------------


def test_s9_rpc_hashrate_is_the_5s_rate_in_ths() -> None:
    sample = PARSER.parse(s9(), ctx())
    assert sample.hashrate_ths == pytest.approx(15.740915842676325)  # MHS 5s 15740915.84
    assert sample.hashrate_avg_ths == pytest.approx(11.988299650652435)  # MHS av, since boot
    assert sample.status is MinerStatus.MINING
    assert sample.uptime_s == 3680
    assert (sample.accepted, sample.rejected, sample.hw_errors) == (153, 0, 186)


def test_s9_rpc_boards_join_temps_by_chain_id_6_7_8() -> None:
    sample = PARSER.parse(s9(), ctx())
    boards = sample.boards
    assert [b.slot for b in boards] == [6, 7, 8]  # DEVS ID: the S9 connector numbers, as stock reports
    assert [b.hashrate_ths for b in boards] == pytest.approx(
        [4.68307074742169, 4.687913424447901, 4.213098705765925]
    )
    assert [b.expected_ths for b in boards] == pytest.approx([4.6683] * 3)  # Nominal MHS
    assert [b.temp_board_c for b in boards] == [75.0, 63.0, 70.0]  # TEMPS ID 6, 7, 8
    assert [b.temp_chip_c for b in boards] == [None, None, None]  # Chip 0.0 and Temperature 0.0: no sensor
    assert [b.hw_errors for b in boards] == [0, 0, 1]
    assert [b.chips_expected for b in boards] == [profile("S9").chips_per_board] * 3
    assert all(b.active and b.chips_ok is None for b in boards)
    assert sample.expected_ths == pytest.approx(3 * 4.6683)
    assert sample.expected_ths_source is Source.MEASURED

    shuffled = s9()
    shuffled["temps"]["TEMPS"].reverse()  # joined by ID, not by position
    assert [b.temp_board_c for b in PARSER.parse(shuffled, ctx()).boards] == [75.0, 63.0, 70.0]


def test_s9_rpc_implausible_board_sensor_is_absent() -> None:
    broken = s9()
    broken["temps"]["TEMPS"][1]["Board"] = -83.0  # bmminer-style dead sensor
    assert [b.temp_board_c for b in PARSER.parse(broken, ctx()).boards] == [75.0, None, 70.0]


def test_s9_rpc_fans_drop_empty_connectors_beyond_the_models_two_fans() -> None:
    assert profile("S9").fans == 2
    sample = PARSER.parse(s9(), ctx())
    assert sample.fans_rpm == (2820, 3780)  # FANS 2820, 3780, 0, 0: connectors 3 and 4 are empty

    stopped = s9()
    stopped["fans"]["FANS"][1]["RPM"] = 0  # a fan the S9 has, stopped: that 0 is a reading
    assert PARSER.parse(stopped, ctx()).fans_rpm == (2820, 0)


def test_s9_rpc_pool_and_last_share() -> None:
    sample = PARSER.parse(s9(), ctx())
    assert sample.pool_url == "stratum+tcp://stratum.antpool.com:3333"
    assert sample.last_share_ts == 1597187897
    assert [p.active for p in sample.pools] == [True, False, False]
    assert [p.last_share_ts for p in sample.pools] == [1597187897, None, None]  # 0 = never
    assert sample.pools[0].user == "antminer_1"
    assert sample.pools[0].accepted == 152


def test_s9_rpc_without_tuner_estimates_power_from_the_profile() -> None:
    sample = PARSER.parse(s9(), ctx())
    s9_profile = profile("S9")
    assert sample.mode is Mode.NORMAL
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(
        round(s9_profile.estimate_power_w(sample.hashrate_ths, Mode.NORMAL) or 0, 1)
    )
    assert sample.power_limit_w is None


def tunerstatus(limit: float, consumption: float) -> dict[str, Any]:
    """Shaped like BOSminer+'s reply (field names: protocols.md §4); not a capture, none is public."""
    return {
        "STATUS": [
            {"STATUS": "S", "When": 1597187990, "Code": 203, "Msg": "Tuner", "Description": "BOSminer+"}
        ],
        "TUNERSTATUS": [
            {
                "PowerLimit": limit,
                "ApproximateMinerPowerConsumption": consumption,
                "TunerChainStatus": [{"HashchainIndex": i, "Status": "Stable"} for i in (6, 7, 8)],
            }
        ],
        "id": 1,
    }


def test_s9_rpc_tuner_watts_are_the_firmwares_own_figure() -> None:
    with_tuner = s9() | {"tunerstatus": tunerstatus(1200, 1187)}
    sample = PARSER.parse(with_tuner, ctx())
    assert (sample.power_w, sample.power_source, sample.power_limit_w) == (1187.0, Source.MEASURED, 1200.0)

    paused = s9() | {"tunerstatus": tunerstatus(1200, 0)}  # BOSminer says 0 W when paused: not a reading
    assert PARSER.parse(paused, ctx()).power_source is Source.ESTIMATED


def test_s9_rpc_unknown_tuner_command_is_not_an_error() -> None:
    invalid = {
        "STATUS": [{"STATUS": "E", "When": 1, "Code": 14, "Msg": "Invalid command", "Description": "x"}]
    }
    sample = PARSER.parse(s9() | {"tunerstatus": invalid}, ctx())
    assert sample.errors == ()
    assert sample.power_source is Source.ESTIMATED


def test_s9_identity_from_the_platform_in_the_devs_description() -> None:
    identity = PARSER.identify(s9(), ctx())
    assert identity.make == "Antminer"
    assert identity.model == "S9"  # "BOSminer bosminer-plus-am1-s9 0.4.0-908ca41d"
    assert identity.firmware is FirmwareFamily.BRAIINS
    assert identity.firmware_version == "0.2.0-36c56a9363"
    assert identity.api_version == "3.7"
    assert identity.profile_key == profile("S9").key
    assert PARSER.parse(s9(), ctx()).identity == identity

    version_only = capture("braiins", version=S9_FILES["version"])
    assert PARSER.identify(version_only, ctx()).model is None  # BOSminer+ 0.2 never names the model
    assert PARSER.identify(version_only, ctx(model_hint="Antminer S9")).model == "S9"


# --- S21 Pro, BOS 26.04 REST -----------------------------------------------------------------------


def test_s21pro_rest_totals() -> None:
    sample = PARSER.parse(s21pro(), ctx())
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)  # real_hashrate.last_5s
    assert sample.hashrate_avg_ths == pytest.approx(244.6012757139522)  # since_restart
    assert sample.expected_ths == pytest.approx(252.59758314720003)  # nominal_hashrate
    assert sample.expected_ths_source is Source.MEASURED
    assert (sample.power_w, sample.power_source) == (3480.0, Source.MEASURED)
    assert sample.power_limit_w == 3500.0  # tuner current_target
    assert sample.mode is Mode.NORMAL  # 252.6 TH/s at 3500 W vs the 234 TH/s sticker: tuning, not overclock
    assert sample.uptime_s == 7039  # bosminer_uptime_s
    assert (sample.accepted, sample.rejected, sample.last_share_ts) == (848, 0, 1776445677)
    assert sample.hw_errors is None
    assert sample.errors == ()


def test_s21pro_rest_boards_fans_and_air() -> None:
    sample = PARSER.parse(s21pro(), ctx())
    boards = sample.boards
    assert [b.slot for b in boards] == [1, 2, 3]  # hashboard id "1".."3"
    assert [b.hashrate_ths for b in boards] == pytest.approx(
        [83.16843130521843, 86.69932552387427, 84.13826274583308]
    )
    assert [b.expected_ths for b in boards] == pytest.approx([83.43320451864, 84.66840701136, 84.4959716172])
    assert [b.temp_chip_c for b in boards] == [65.375, 63.5625, 63.5]
    assert [b.temp_board_c for b in boards] == [50.375, 48.5625, 48.5]
    assert [b.chips_ok for b in boards] == [65, 65, 65]
    assert [b.chips_expected for b in boards] == [profile("S21 Pro").chips_per_board] * 3
    assert [b.serial for b in boards] == ["THQGYSCBDJIAH11S3", "THQGYSCBDJIAH120Z", "THQGYSCBDJIAH12AD"]
    assert all(b.active for b in boards)
    assert sample.fans_rpm == (5943, 5943, 5943, 5973)
    assert (sample.inlet_c, sample.outlet_c) == (35.125, 50.375)
    assert sample.temp_max_c == 65.375


def test_s21pro_rest_pools() -> None:
    sample = PARSER.parse(s21pro(), ctx())
    assert sample.pool_url == "stratum+tcp://example.pool.com:3333"
    assert [(p.url, p.active, p.status) for p in sample.pools] == [
        ("stratum+tcp://example.pool.com:3333", True, "Alive"),
        ("stratum+tcp://example.pool2.com:3333", False, "Alive"),
    ]
    assert sample.pools[0].accepted == 848
    assert sample.pools[1].last_share_ts is None


def test_s21pro_rest_identity() -> None:
    identity = PARSER.identify(s21pro(), ctx())
    assert identity.make == "Antminer"
    assert identity.model == "S21 Pro"  # "Antminer S21 Pro"
    assert identity.firmware is FirmwareFamily.BRAIINS
    assert identity.firmware_version == "2026-04-14-0-912d084c-26.04-plus"
    assert identity.mac == "02:8F:77:EC:E7:E0"
    assert identity.serial == "THQGFKUBDJIAH0E9G"
    assert identity.hostname == "Antminer"
    assert identity.profile_key == profile("S21 Pro").key


def test_s21pro_rest_paused_is_sleeping_with_sleep_watts() -> None:
    paused = s21pro()
    paused["rest:miner_details"]["status"] = 3  # MINER_STATUS_PAUSED
    paused["rest:miner_stats"]["power_stats"]["approximated_consumption"]["watt"] = 0
    sample = PARSER.parse(paused, ctx())
    assert (sample.status, sample.mode) == (MinerStatus.SLEEPING, Mode.SLEEP)
    assert (sample.power_w, sample.power_source) == (profile("S21 Pro").sleep_w, Source.ESTIMATED)
    assert not any(b.active for b in sample.boards)


def test_s21pro_rest_suspended_is_noted() -> None:
    suspended = s21pro()
    suspended["rest:miner_details"]["status"] = 4
    assert PARSER.parse(suspended, ctx()).errors == ("firmware status: mining suspended by the firmware",)


def test_s21pro_rest_power_target_falls_back_to_the_configuration() -> None:
    without_tuner = {k: v for k, v in s21pro().items() if k != "rest:performance_tuner_state"}
    assert (
        PARSER.parse(without_tuner, ctx()).power_limit_w == 3500.0
    )  # configuration/miner tuner.power_target


def test_s21pro_rest_minimal_capture_still_parses() -> None:
    minimal = {"rest:miner_stats": s21pro()["rest:miner_stats"]}
    sample = PARSER.parse(minimal, ctx(model_hint="S21 Pro"))
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)
    assert sample.boards == ()
    assert sample.fans_rpm == ()
    assert sample.identity is not None and sample.identity.model == "S21 Pro"


# --- errors ----------------------------------------------------------------------------------------


def test_no_usable_data_names_what_is_missing() -> None:
    with pytest.raises(ProtocolError, match=r"summary.*rest:miner_stats"):
        PARSER.parse({"pools": s9()["pools"]}, ctx())
    with pytest.raises(ProtocolError, match="miner_stats"):
        PARSER.parse({"rest:miner_stats": {"oops": 1}}, ctx())
    with pytest.raises(ProtocolError, match="SUMMARY"):
        PARSER.parse({"summary": {"STATUS": [{"STATUS": "S"}], "id": 1}}, ctx())
    with pytest.raises(ProtocolError):
        PARSER.identify({}, ctx())


@pytest.mark.parametrize(("code", "error"), [(45, AuthFailed), (23, ProtocolError)])
def test_error_replies_go_through_check_status(code: int, error: type[Exception]) -> None:
    denied = copy.deepcopy(s9())
    denied["summary"] = {
        "STATUS": [{"STATUS": "E", "When": 1, "Code": code, "Msg": "no", "Description": "x"}]
    }
    with pytest.raises(error):
        PARSER.parse(denied, ctx())
