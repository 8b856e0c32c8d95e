"""Whatsminer parser against every capture in tests/fixtures/devices/whatsminer (values read by hand).

Sets: M31S 2020/21 firmware (summary + edevs + pools), M31S "sleeping" case (status, summary and the
error reply to a multi-command sent with the wrong key), M20S 2021 firmware (asic-rs: summary, devs,
pools, status, get_version, get_psu), M20S 2019 firmware (summary + per-chip stats), M60S API v3
(get.device.info). v2 summaries carry no model: the inventory's hint (ctx) names it, as in production.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError, Unsupported
from gateway.devices.model import BoardReading, MinerStatus, Mode, Source
from gateway.devices.parsers.whatsminer import PARSER
from gateway.devices.parsers.whatsminer_common import normalize_model
from tests.devices.capture import PROFILES, capture, ctx, reply

M31S = {"summary": "m31s_summary.json", "edevs": "m31s_edevs.json", "pools": "m31s_pools.json"}
M20S_2021 = {
    key: f"m20s_fw20210322_{key}.json"
    for key in ("summary", "devs", "pools", "status", "get_version", "get_psu")
}
M20S_2019 = {"summary": "m20s_oldfw_summary.json", "stats": "m20s_oldfw_stats.json"}
V3_INFO = "v3:get.device.info"
V3_SUMMARY = "v3:get.miner.status.summary"

# get.miner.status summary: the example response of the public API doc (apidoc.whatsminer.com, API 3.0.x).
# No public capture of it exists; this documents the shape the v3 parser reads, and says so.
V3_DOC_SUMMARY: dict[str, Any] = {
    "code": 0,
    "when": 1692685476,
    "msg": {
        "summary": {
            "elapsed": 1074,
            "bootup-time": 1175,
            "freq-avg": 788,
            "target-freq": 0,
            "factory-hash": 101.366,
            "hash-average": 101.847,
            "hash-1min": 102.072,
            "hash-15min": 101.847,
            "hash-realtime": 101.847,
            "power-rate": 31.886,
            "power-5min": 3247.641,
            "power-realtime": 3268,
            "environment-temperature": 34.8,
            "board-temperature": [69.6, 70.1, 72.3],
            "chip-temp-min": 83.2,
            "chip-temp-avg": 92.9,
            "chip-temp-max": 100.3,
            "power-limit": 3500,
            "up-freq-finish": 1,
            "fan-speed-in": 4980,
            "fan-speed-out": 5070,
        }
    },
    "desc": "get.miner.status",
}


def _m60s(**extra: Any) -> dict[str, Any]:
    return {**capture("whatsminer", **{V3_INFO: "m60s_vk40_v3_get_device_info.json"}), **extra}


# --- M31S (btminer 2020/21) --------------------------------------------------------------------------


def test_m31s_summary_units_and_power() -> None:
    sample = PARSER.parse(capture("whatsminer", **M31S), ctx("M31S"))

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(76.69080844)  # HS RT in MH/s, not MHS 5s (92.77)
    assert sample.hashrate_avg_ths == pytest.approx(76.71860438)  # MHS av
    assert sample.expected_ths == pytest.approx(75.697)  # Factory GHS 75697
    assert sample.expected_ths_source is Source.MEASURED
    assert sample.power_w == 3552.0  # Power_RT
    assert sample.power_source is Source.MEASURED
    assert sample.power_limit_w == 3600.0
    assert sample.mode is Mode.HIGH  # "Power Mode": "High"
    assert sample.inlet_c == 7.0  # Env Temp: cold but plausible (February)
    assert sample.accepted == 2296 and sample.rejected == 1 and sample.hw_errors == 0
    assert sample.uptime_s == 33102  # Elapsed (btminer), not Uptime 1405529 (controller)


def test_m31s_fans_keep_the_stopped_outlet_fan_and_its_error_codes() -> None:
    sample = PARSER.parse(capture("whatsminer", **M31S), ctx("M31S"))

    assert PROFILES.get("whatsminer_m31s").fans == 2
    assert sample.fans_rpm == (5700, 0)  # Fan Speed Out 0 on a 2-fan model: a stopped fan ...
    assert sample.errors == ("error code 110", "error code 111", "error code 131")  # ... and fan errors


def test_m31s_boards_from_edevs() -> None:
    sample = PARSER.parse(capture("whatsminer", **M31S), ctx("M31S"))

    assert [b.slot for b in sample.boards] == [0, 1, 2]
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([25.01289274, 26.03248718, 25.9448617])
    assert [b.temp_board_c for b in sample.boards] == [57.5, 72.0, 68.0]
    assert [b.temp_chip_c for b in sample.boards] == [77.44, 93.0, 89.17]  # Chip Temp Max
    assert [b.chips_ok for b in sample.boards] == [105, 105, 105]
    assert [b.chips_expected for b in sample.boards] == [105, 105, 105]
    assert [b.hw_errors for b in sample.boards] == [0, 0, 0]
    assert [b.serial for b in sample.boards] == ["BJM1FS69630721K31122", "BJM1FS69630721K31108", "x"]
    assert sample.temp_max_c == 93.0


def test_m31s_pools_and_identity() -> None:
    sample = PARSER.parse(capture("whatsminer", **M31S), ctx("M31S"))

    assert len(sample.pools) == 3
    assert sample.pool_url == "stratum+tcp://btc.ss.poolin.com:443"
    assert sample.last_share_ts == 1612175429
    assert [p.active for p in sample.pools] == [True, False, False]
    assert sample.pools[1].last_share_ts is None  # 0 = never
    identity = sample.identity
    assert identity is not None
    assert (identity.make, identity.model) == ("Whatsminer", "M31S")
    assert identity.firmware_version == "20201202.22.REL"  # quotes stripped from "'20201202.22.REL'"
    assert identity.mac == "C6:06:12:00:2D:63"
    assert identity.profile_key == "whatsminer_m31s"


def test_m31s_sleeping_status_alone_is_sleeping() -> None:
    sample = PARSER.parse(capture("whatsminer", status="m31s_sleeping_status.json"), ctx("M31S"))
    profile = PROFILES.get("whatsminer_m31s")

    assert sample.status is MinerStatus.SLEEPING
    assert sample.mode is Mode.SLEEP
    assert sample.hashrate_ths is None
    # The rated capacity, asleep too (the Antminer backend's convention): the profile's normal rate.
    assert sample.expected_ths == profile.nominal_ths and sample.expected_ths_source is Source.ESTIMATED
    assert sample.power_w == profile.sleep_w and sample.power_source is Source.ESTIMATED
    assert sample.boards == () and sample.fans_rpm == ()
    assert sample.errors == ("summary: missing from the capture",)
    assert sample.identity is not None
    assert sample.identity.firmware_version == "20210109.22.REL"
    assert sample.identity.api_version == "1.3"  # Description "whatsminer v1.3"


def test_m31s_sleeping_status_with_the_failed_multicommand_is_sleeping() -> None:
    """The foreman 'sleeping' case: btminer off, and the summary request got an error reply."""
    files = {"status": "m31s_sleeping_status.json", "summary": "m31s_multicommand_with_cmd_key_error.json"}
    sample = PARSER.parse(capture("whatsminer", **files), ctx("M31S"))

    assert sample.status is MinerStatus.SLEEPING
    assert sample.errors == ("summary: btminer error 24: Missing JSON 'command'",)


def test_multicommand_sent_with_cmd_key_is_a_protocol_error() -> None:
    error = capture("whatsminer", summary="m31s_multicommand_with_cmd_key_error.json")
    with pytest.raises(ProtocolError, match="24: Missing JSON 'command'"):
        PARSER.parse(error, ctx("M31S"))


def test_m31s_sleeping_summary_is_a_hashing_summary() -> None:
    """Labelled 'sleeping' by its source, but written 86 days before the status reply (When 1606354856
    vs 1613790817) and hashing 85 TH/s: parsed as what it says. No HS RT on 2020-05 firmware."""
    sample = PARSER.parse(capture("whatsminer", summary="m31s_sleeping_summary.json"), ctx("M31S"))

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(85.03843001)  # MHS 5s
    assert sample.hashrate_avg_ths == pytest.approx(85.10639937)
    assert sample.expected_ths == pytest.approx(86.472)
    assert sample.power_w == 3232.0 and sample.power_limit_w == 3600.0
    assert sample.mode is Mode.NORMAL
    assert sample.inlet_c == 11.0
    assert sample.fans_rpm == (2370, 2430)
    assert sample.errors == ("error code 205",)  # Factory Error Codes 202/2310 are history
    assert sample.hw_errors == 800 and sample.uptime_s == 29600
    assert sample.boards == ()
    assert sample.identity is not None and sample.identity.mac == "C6:02:14:00:1F:B3"


def test_btmineroff_flag_is_not_believed_while_the_summary_hashes() -> None:
    files = {"status": "m31s_sleeping_status.json", "summary": "m31s_sleeping_summary.json"}
    sample = PARSER.parse(capture("whatsminer", **files), ctx("M31S"))
    assert sample.status is MinerStatus.MINING and sample.mode is Mode.NORMAL


# --- M20S (firmware 20210322) ---------------------------------------------------------------------


def test_m20s_2021_is_mining_although_status_says_btmineroff() -> None:
    """status and summary were written in the same second (When 1761061371): btmineroff "true" while
    hashing 67 TH/s at 3427 W. The flag is not a sleep indicator on this firmware."""
    sample = PARSER.parse(capture("whatsminer", **M20S_2021), ctx("M20S"))

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(67.39480097)  # HS RT
    assert sample.hashrate_avg_ths == pytest.approx(67.75325119)
    assert sample.expected_ths == pytest.approx(68.796)
    assert sample.power_w == 3427.0 and sample.power_source is Source.MEASURED
    assert sample.power_limit_w == 3500.0
    assert sample.mode is Mode.NORMAL
    assert sample.fans_rpm == (6450, 6480)
    assert sample.inlet_c is None  # no Env Temp on this firmware
    assert sample.accepted == 2338 and sample.rejected == 0 and sample.hw_errors == 69
    assert sample.uptime_s == 10154
    assert sample.pool_url == "stratum+tcp://btc.example.pool:3333" and sample.last_share_ts == 1761061364
    assert sample.errors == ()


def test_m20s_2021_boards_from_devs() -> None:
    sample = PARSER.parse(capture("whatsminer", **M20S_2021), ctx("M20S"))

    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([20.05343874, 25.56731781, 24.35129228])
    assert [b.temp_board_c for b in sample.boards] == [70.0, 69.5, 71.5]
    assert [b.temp_chip_c for b in sample.boards] == [90.0, 90.11, 92.5]
    assert [b.chips_ok for b in sample.boards] == [105, 105, 105]
    assert [b.hw_errors for b in sample.boards] == [15, 47, 7]
    assert sample.boards_active == 3


def test_m20s_2021_identity_uses_the_native_commands() -> None:
    identity = PARSER.identify(capture("whatsminer", **M20S_2021), ctx("M20SV10"))

    assert identity.model == "M20S"  # the board revision suffix is not part of the model
    assert identity.firmware_version == "20210322.22.REL"  # get_version fw_ver
    assert identity.api_version == "1.4.0"  # api_ver "whatsminer v1.4.0"
    assert identity.mac == "C4:08:28:00:A4:19"
    assert identity.profile_key == "whatsminer_m20s"


def test_native_replies_alone_identify_but_do_not_make_a_sample() -> None:
    files = {"get_version": "m20s_fw20210322_get_version.json", "get_psu": "m20s_fw20210322_get_psu.json"}
    identity = PARSER.identify(capture("whatsminer", **files), ctx())
    assert identity.firmware_version == "20210322.22.REL" and identity.model is None
    with pytest.raises(ProtocolError, match="summary: missing"):
        PARSER.parse(capture("whatsminer", **files), ctx())


def test_pools_alone_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="summary: missing"):
        PARSER.parse(capture("whatsminer", pools="m20s_fw20210322_pools.json"), ctx("M20S"))
    with pytest.raises(ProtocolError, match="no usable"):
        PARSER.identify(capture("whatsminer", pools="m31s_pools.json"), ctx())


# --- M20S (2019 firmware) ------------------------------------------------------------------------


def test_m20s_2019_summary_without_watts_is_estimated_from_the_profile() -> None:
    sample = PARSER.parse(capture("whatsminer", **M20S_2019), ctx("M20S"))
    profile = PROFILES.get("whatsminer_m20s")

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(65.37130278)  # MHS 5s (no HS RT)
    assert sample.hashrate_avg_ths == pytest.approx(65.49208933)
    assert sample.power_w == pytest.approx(round(profile.estimate_power_w(65.37130278, None) or 0, 1))
    assert sample.power_source is Source.ESTIMATED
    assert sample.expected_ths == profile.nominal_ths and sample.expected_ths_source is Source.ESTIMATED
    assert sample.mode is None and sample.power_limit_w is None
    assert sample.fans_rpm == (4590, 4560)
    assert sample.accepted == 33825 and sample.rejected == 185 and sample.hw_errors == 1601
    assert sample.uptime_s == 97139


def test_m20s_2019_boards_from_per_chip_stats() -> None:
    sample = PARSER.parse(capture("whatsminer", **M20S_2019), ctx("M20S"))

    assert sample.boards == (
        BoardReading(slot=0, temp_board_c=75.0, chips_ok=105, chips_expected=105),
        BoardReading(slot=1, temp_board_c=73.0, chips_ok=105, chips_expected=105),
        BoardReading(slot=2, temp_board_c=72.5, chips_ok=105, chips_expected=105),
    )  # no per-board rate on this firmware; temp_2 0.00 is "no sensor"


def test_old_stats_chip_without_nonces_is_not_ok() -> None:
    stats = reply("whatsminer/m20s_oldfw_stats.json")
    stats["STATS"][1]["chip_nonce_count_62"] = 0
    sample = PARSER.parse(
        {"summary": reply("whatsminer/m20s_oldfw_summary.json"), "stats": stats}, ctx("M20S")
    )
    assert [b.chips_ok for b in sample.boards] == [105, 104, 105]


# --- error codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [(45, AuthFailed), (135, AuthFailed), (136, AuthFailed), (132, ProtocolError), (14, Unsupported)],
)
def test_btminer_error_codes(code: int, error: type[DeviceError]) -> None:
    native = {"STATUS": "E", "When": 1, "Code": code, "Msg": "refused", "Description": "whatsminer v1.4.0"}
    with pytest.raises(error, match=f"btminer error {code}"):
        PARSER.parse({"summary": native}, ctx("M31S"))


# --- API v3: M60S -----------------------------------------------------------------------------------


def test_m60s_v3_identity() -> None:
    identity = PARSER.identify(_m60s(), ctx())

    assert (identity.make, identity.model) == ("Whatsminer", "M60S")  # "type": "M60S_VK40"
    assert identity.firmware_version == "20251209.16.Rel2"
    assert identity.api_version == "3.0.2"
    assert identity.mac == "CE:02:01:00:8C:36"
    assert identity.serial == "BTM3CS40HD24083100000000000000000"
    assert identity.hostname == "WhatsMiner"
    assert identity.profile_key == "whatsminer_m60s"


def test_m60s_v3_device_info_alone_names_the_missing_summary() -> None:
    with pytest.raises(ProtocolError, match=r"v3:get\.miner\.status\.summary: missing"):
        PARSER.parse(_m60s(), ctx())


def test_m60s_v3_with_the_documented_summary() -> None:
    sample = PARSER.parse(_m60s(**{V3_SUMMARY: V3_DOC_SUMMARY}), ctx())
    profile = PROFILES.get("whatsminer_m60s")

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == 101.847 and sample.hashrate_avg_ths == 101.847  # TH/s already
    assert sample.expected_ths == 101.366 and sample.expected_ths_source is Source.MEASURED
    assert sample.power_w == 3268.0 and sample.power_source is Source.MEASURED
    assert sample.power_limit_w == 3500.0
    assert sample.fans_rpm == (4980, 5070)
    assert sample.inlet_c == 34.8
    assert sample.uptime_s == 1074
    assert sample.mode is None
    assert sample.errors == ()
    # No edevs: boards from summary board-temperature + device info serials and detect-hash-rate.
    assert [b.temp_board_c for b in sample.boards] == [69.6, 70.1, 72.3]
    assert [b.serial for b in sample.boards] == [
        "BKM3CSE1404807K42757",
        "BKM3CSE1404812K43675",
        "BKM3CSE1404807K42762",
    ]
    assert [b.expected_ths for b in sample.boards] == pytest.approx([61.434, 53.890, 65.727])
    assert [b.chips_expected for b in sample.boards] == [profile.chips_expected("M60S_VK40")] * 3
    assert all(b.hashrate_ths is None and b.active for b in sample.boards)


def test_m60s_v3_edevs_and_pools() -> None:
    """edevs/pools field names as public clients read them (asic-rs v3 backend); no capture exists."""
    edevs = {
        "code": 0,
        "msg": {
            "edevs": [
                {"id": i, "hash-average": h, "factory-hash": 62.0, "chip-temp-max": t, "effective-chips": 225}
                for i, (h, t) in enumerate(((61.2, 80.5), (0.0, 0.0), (64.9, 82.25)))
            ]
        },
    }
    pools = {
        "code": 0,
        "msg": {
            "pools": [
                {
                    "id": 1,
                    "url": "stratum+tcp://a.example:3333",
                    "account": "w.1",
                    "status": "alive",
                    "stratum-active": True,
                },
                {
                    "id": 2,
                    "url": "stratum+tcp://b.example:3333",
                    "account": "w.1",
                    "status": "alive",
                    "stratum-active": False,
                },
            ]
        },
    }
    extra = {
        V3_SUMMARY: V3_DOC_SUMMARY,
        "v3:get.miner.status.edevs": edevs,
        "v3:get.miner.status.pools": pools,
    }
    sample = PARSER.parse(_m60s(**extra), ctx())

    assert [b.hashrate_ths for b in sample.boards] == [61.2, 0.0, 64.9]
    assert [b.temp_chip_c for b in sample.boards] == [80.5, None, 82.25]  # 0 = no reading
    assert [b.temp_board_c for b in sample.boards] == [69.6, 70.1, 72.3]
    assert [b.expected_ths for b in sample.boards] == [62.0, 62.0, 62.0]
    assert [b.chips_ok for b in sample.boards] == [225, 225, 225]
    assert sample.pool_url == "stratum+tcp://a.example:3333"
    assert [p.user for p in sample.pools] == ["w.1", "w.1"]


def test_m60s_v3_stopped_service_is_sleeping() -> None:
    info = reply("whatsminer/m60s_vk40_v3_get_device_info.json")
    info["msg"]["miner"]["working"] = "false"
    failed = {"code": -1, "when": 1, "msg": "fail", "desc": "get.miner.status"}
    sample = PARSER.parse({V3_INFO: info, V3_SUMMARY: failed}, ctx())
    profile = PROFILES.get("whatsminer_m60s")

    assert sample.status is MinerStatus.SLEEPING and sample.mode is Mode.SLEEP
    assert sample.power_w == profile.sleep_w and sample.power_source is Source.ESTIMATED
    assert sample.errors == ("v3:get.miner.status.summary: whatsminer API v3 error -1: fail",)
    assert [b.active for b in sample.boards] == [False, False, False]  # board-num 3


def test_m60s_v3_device_error_codes() -> None:
    info = copy.deepcopy(reply("whatsminer/m60s_vk40_v3_get_device_info.json"))
    info["msg"]["error-code"] = [{"531": "2025-03-12 14:52:35", "reason": "Slot1 not found."}]
    sample = PARSER.parse({V3_INFO: info, V3_SUMMARY: V3_DOC_SUMMARY}, ctx())
    assert sample.errors == ("error code 531: Slot1 not found.",)


@pytest.mark.parametrize(
    ("code", "error"), [(-1, ProtocolError), (-2, Unsupported), (-3, ProtocolError), (-4, AuthFailed)]
)
def test_v3_error_codes(code: int, error: type[DeviceError]) -> None:
    refused = {"code": code, "when": 1, "msg": "no", "desc": "get.miner.status"}
    with pytest.raises(error, match=f"v3 error {code}"):
        PARSER.parse(_m60s(**{V3_SUMMARY: refused}), ctx())


# --- model names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "model"),
    [
        ("M60S_VK40", "M60S"),
        ("M31S+V40", "M31S+"),
        ("M20SV10", "M20S"),
        ("M30S++_VH70", "M30S++"),
        ("WhatsMiner M30SPlus_VE40", "M30S+"),
        ("M31S", "M31S"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_model(reported: str | None, model: str | None) -> None:
    assert normalize_model(reported) == model


def test_command_keys_name_the_capture_file_suffixes() -> None:
    assert PARSER.command_keys["v3:get.device.info"] == "v3_get_device_info"
    assert PARSER.command_keys["v3:get.miner.status.summary"] == "v3_get_miner_status_summary"
    assert PARSER.command_keys["get_psu"] == "get_psu"
    assert {"summary", "edevs", "devs", "pools", "status", "get_version", "get_miner_info", "stats"} <= set(
        PARSER.command_keys
    )
