"""Stock Antminer parser against every captured Antminer reply (tests/fixtures/devices/antminer).

Expected values were read by hand from the files; the comments say where each comes from. Watts are
computed from the loaded profile, never hard-coded, so a profile edit does not break these tests.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError, Unsupported
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Sample, Source
from gateway.devices.parsers import parser_for
from gateway.devices.parsers.antminer import PARSER
from gateway.devices.parsers.common import ParseContext
from gateway.devices.profiles import ProfileCatalog, load_profiles
from tests.devices.capture import FIXTURES, TS, capture

REPO_PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"

# Minimal stand-ins, used only if a profile file has not landed yet (another helper writes them). The
# figures are irrelevant: every expectation below reads them back from the catalog.
_PLACEHOLDERS = {
    "antminer_s9": ("S9", 3, 63, 2, 13.5, 1323),
    "antminer_s19": ("S19", 3, 76, 4, 95, 3250),
    "antminer_s19_pro": ("S19 Pro", 3, 114, 4, 110, 3250),
    "antminer_s21": ("S21", 3, 108, 4, 200, 3500),
}

SETS: dict[str, dict[str, str]] = {
    "s9": {
        "stats": "s9_bmminer_stats.json",
        "pools": "s9_bmminer_pools.json",
        "version": "s9_bmminer_version.json",
    },
    "s19_sleeping": {
        "stats": "s19_sleeping_stats.json",
        "pools": "s19_sleeping_pools.json",
        "version": "s19_sleeping_version.json",
        "get_miner_conf.cgi": "s19_sleeping_get_miner_conf.cgi.json",
    },
    "s19_overheating": {"stats": "s19_overheating_stats.json"},
    "s19pro": {
        "stats": "s19pro_fw2022_stats.json",
        "summary": "s19pro_fw2022_summary.json",
        "pools": "s19pro_fw2022_pools.json",
        "devs": "s19pro_fw2022_devs.json",
        "version": "s19pro_fw2022_version.json",
    },
    "s21_web": {
        "stats.cgi": "s21_stats.cgi.json",
        "summary.cgi": "s21_summary.cgi.json",
        "get_system_info.cgi": "s21_get_system_info.cgi.json",
    },
    "s21_web_b": {
        "stats.cgi": "s21_stats.cgi.json",
        "summary.cgi": "s21_summary.cgi.json",
        "get_system_info.cgi": "s21_get_system_info.cgi_b.json",
    },
}


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> ProfileCatalog:
    missing = [key for key in _PLACEHOLDERS if not (REPO_PROFILES / f"{key}.toml").exists()]
    if not missing:
        return load_profiles(REPO_PROFILES)
    directory = tmp_path_factory.mktemp("profiles")
    for path in REPO_PROFILES.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    for key in missing:
        model, boards, chips, fans, ths, watts = _PLACEHOLDERS[key]
        (directory / f"{key}.toml").write_text(
            f'make = "Antminer"\nmodel = "{model}"\nhashboards = {boards}\nchips_per_board = {chips}\n'
            f'fans = {fans}\nsleep_method = "antminer_miner_mode"\nfirmware = ["stock"]\n'
            f'source = "test placeholder until the real profile lands"\n'
            f"[modes.normal]\nhashrate_ths = {ths}\npower_w = {watts}\n"
            f"[modes.sleep]\nhashrate_ths = 0\npower_w = 15\n"
        )
    return load_profiles(directory)


def _ctx(profiles: ProfileCatalog | None) -> ParseContext:
    return ParseContext(miner_id="m1", ts=TS, profiles=profiles)


def _set(name: str) -> dict[str, Any]:
    return capture("antminer", **SETS[name])


def _parse(name: str, profiles: ProfileCatalog, **override: Any) -> Sample:
    data = _set(name)
    data.update(override)
    return PARSER.parse(data, _ctx(profiles))


def _watts(profiles: ProfileCatalog, key: str, ths: float, mode: Mode | None = None) -> float:
    watts = profiles.get(key).estimate_power_w(ths, mode)
    assert watts is not None
    return round(watts, 1)


def _stats_entry(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = data["stats"]["STATS"][1]
    return entry


def test_every_antminer_capture_is_exercised() -> None:
    used = {name for files in SETS.values() for name in files.values()}
    on_disk = {path.name for path in (FIXTURES / "antminer").glob("*.json")}
    assert on_disk == used
    assert len(on_disk) == 17


def test_registered_as_the_antminer_family_parser() -> None:
    assert parser_for(FirmwareFamily.ANTMINER) is PARSER
    assert PARSER.command_keys["stats.cgi"] == "stats.cgi"
    assert PARSER.command_keys["get_miner_conf.cgi"] == "get_miner_conf.cgi"


# --- S9 (bmminer 2.0.0; invalid JSON `}{`; chains 6-8; a -83 sensor) ---------------------------------


def test_s9_totals_and_identity(profiles: ProfileCatalog) -> None:
    sample = _parse("s9", profiles)
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(13.88381)  # "GHS 5s":"13883.81", a string
    assert sample.hashrate_avg_ths == pytest.approx(13.89036)  # GHS av, never the headline rate
    assert sample.expected_ths == pytest.approx(13.86252)  # total_rateideal
    assert sample.expected_ths_source is Source.MEASURED
    assert sample.uptime_s == 293628
    assert sample.mode is None  # the S9 reports no work mode at all
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s9", 13.88381))
    assert sample.hw_errors == 178540  # no_matching_work: no summary in this set
    assert (sample.accepted, sample.rejected) == (22673, 8)  # summed from pools
    assert sample.inlet_c is None and sample.outlet_c is None  # no per-sensor arrays on the S9
    assert sample.errors == ()
    identity = sample.identity
    assert identity is not None
    assert identity.model == "S9"  # "Antminer S9\nV1.3.58"
    assert identity.firmware is FirmwareFamily.ANTMINER
    assert identity.firmware_version == "Wed Jul 31 16:18:27 CST 2019"
    assert identity.api_version == "3.1"
    assert identity.profile_key == "antminer_s9"


def test_s9_boards_are_chains_6_to_8_and_empty_slots_are_not_boards(profiles: ProfileCatalog) -> None:
    boards = _parse("s9", profiles).boards
    assert [b.slot for b in boards] == [6, 7, 8]
    assert [b.hashrate_ths for b in boards] == pytest.approx([4.61885, 4.62455, 4.64041])
    assert [b.expected_ths for b in boards] == pytest.approx([4.62034, 4.62087, 4.62131])
    assert [(b.chips_ok, b.chips_expected) for b in boards] == [(63, 63)] * 3  # 'oooooooo' x7 + 'ooooooo'
    assert [b.hw_errors for b in boards] == [3085, 289, 175165]
    assert all(b.active for b in boards)


def test_s9_board_temp_is_temp_n_chip_temp_is_temp2_n_and_bad_sensors_are_none(
    profiles: ProfileCatalog,
) -> None:
    six, seven, eight = _parse("s9", profiles).boards
    assert (six.temp_chip_c, six.temp_board_c) == (62.0, 75.0)  # temp2_6, temp6
    assert (seven.temp_chip_c, seven.temp_board_c) == (None, None)  # temp2_7 = -83, temp7 = 0
    assert (eight.temp_chip_c, eight.temp_board_c) == (62.0, 73.0)


def test_s9_fans_use_fan_num_not_slot_count(profiles: ProfileCatalog) -> None:
    # fan1..fan8 is a fixed array; fan_num = 2 and only fan5/fan6 are non-zero.
    assert _parse("s9", profiles).fans_rpm == (3720, 2400)


def test_a_stopped_fan_is_reported_as_zero_not_dropped(profiles: ProfileCatalog) -> None:
    data = _set("s9")
    _stats_entry(data)["fan6"] = 0
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.fans_rpm == (3720, 0)  # fan_num still says 2 fans exist


def test_without_fan_num_the_profile_says_how_many_fans_exist(profiles: ProfileCatalog) -> None:
    data = _set("s9")
    entry = _stats_entry(data)
    del entry["fan_num"]
    entry["fan6"] = 0
    assert PARSER.parse(data, _ctx(profiles)).fans_rpm == (3720, 0)
    assert PARSER.parse(data, _ctx(None)).fans_rpm == (3720,)


def test_s9_pools_skip_the_empty_slot_and_keep_durations_out_of_timestamps(profiles: ProfileCatalog) -> None:
    sample = _parse("s9", profiles)
    assert sample.pool_url == "stratum+tcp://ss.antpool.com:3333"
    assert [p.url for p in sample.pools] == [
        "stratum+tcp://ss.antpool.com:3333",
        "stratum+tcp://ss.antpool.com:443",
    ]
    first, second = sample.pools
    assert (first.active, first.status, first.user, first.accepted, first.rejected) == (
        True,
        "Alive",
        "xxx",
        22673,
        8,
    )
    assert first.last_share_ts is None  # "0:00:05" is a duration, not an epoch
    assert (second.active, second.last_share_ts) == (False, None)  # "0"
    assert sample.last_share_ts is None


def test_s9_missing_board_is_counted_when_its_slot_cannot_be_known(profiles: ProfileCatalog) -> None:
    data = _set("s9")
    entry = _stats_entry(data)
    entry.update({"chain_acn7": 0, "chain_acs7": "", "chain_rate7": ""})
    sample = PARSER.parse(data, _ctx(profiles))
    assert [b.slot for b in sample.boards] == [6, 8]
    assert "firmware reports 2 of 3 hashboards" in sample.errors


# --- S19 asleep (bitmain-work-mode "1"; chips 'xx'; chain 1 missing) ----------------------------------


def test_s19_sleeping_set_is_sleeping(profiles: ProfileCatalog) -> None:
    sample = _parse("s19_sleeping", profiles)
    assert sample.status is MinerStatus.SLEEPING
    assert sample.mode is Mode.SLEEP
    assert sample.hashrate_ths == 0.0
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(profiles.get("antminer_s19").sleep_w)
    assert sample.expected_ths == pytest.approx(63.919)  # total_rateideal, as the firmware rates it
    assert sample.fans_rpm == (1560, 1560, 600, 720)
    assert sample.uptime_s == 735
    assert sample.pool_url == "stratum+tcp://aaa:700"
    assert [p.status for p in sample.pools] == ["Alive", "Alive", "Deed"]  # the firmware's typo, kept
    assert (sample.accepted, sample.rejected) == (0, 0)
    assert (sample.inlet_c, sample.outlet_c) == (37.0, 40.0)  # cold boards: 39-37 | 40-39, 38-38 | 40-40
    assert sample.identity is not None and sample.identity.model == "S19"
    assert sample.boards_active == 0
    assert sample.temp_max_c is None  # only active boards count


def test_s19_sleeping_boards_are_inactive_not_dead(profiles: ProfileCatalog) -> None:
    sample = _parse("s19_sleeping", profiles)
    assert [b.slot for b in sample.boards] == [1, 2, 3]
    missing, two, three = sample.boards
    # chain 1: acn 0, acs "", rate "" -> not listed by the firmware; the profile expects 3 boards
    assert (missing.active, missing.hashrate_ths, missing.chips_ok, missing.chips_expected) == (
        False,
        None,
        None,
        76,
    )
    assert "chain 1: not detected by the firmware (profile expects 3 boards)" in sample.errors
    for board in (two, three):
        assert board.active is False
        assert board.chips_ok is None  # 'xx xx ...' while asleep says nothing about chip health
        assert board.chips_expected == 76  # chain_acn2/3
        assert board.hashrate_ths == 0.0  # chain_rate "0.00"
        assert (board.temp_chip_c, board.temp_board_c) == (40.0, 40.0)


def test_s19_sleeping_stats_alone_cannot_tell_sleep_from_fault(profiles: ProfileCatalog) -> None:
    sample = PARSER.parse(capture("antminer", stats="s19_sleeping_stats.json"), _ctx(profiles))
    assert sample.status is MinerStatus.ERROR
    assert sample.mode is None  # "Mode": 2 is not a sleep flag (the hashing S19 Pro reports it too)
    assert [(b.slot, b.active, b.chips_ok) for b in sample.boards] == [
        (1, False, None),
        (2, True, 0),
        (3, True, 0),
    ]
    assert any("get_miner_conf.cgi would tell" in e for e in sample.errors)


@pytest.mark.parametrize(
    ("work_mode", "expected"),
    [("0", Mode.NORMAL), ("1", Mode.SLEEP), ("3", Mode.LOW), (1, Mode.SLEEP), ("", None)],
)
def test_bitmain_work_mode_is_read_as_the_mode(
    profiles: ProfileCatalog, work_mode: Any, expected: Mode | None
) -> None:
    data = _set("s19_sleeping")
    data["get_miner_conf.cgi"]["bitmain-work-mode"] = work_mode
    assert PARSER.parse(data, _ctx(profiles)).mode is expected


def test_unknown_work_mode_is_noted_not_guessed(profiles: ProfileCatalog) -> None:
    data = _set("s19_sleeping")
    data["get_miner_conf.cgi"]["bitmain-work-mode"] = "2"
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.mode is None
    assert sample.status is MinerStatus.ERROR
    assert "get_miner_conf.cgi bitmain-work-mode: unknown work mode '2'" in sample.errors


def test_awake_but_not_hashing_with_chips_all_x_is_an_error(profiles: ProfileCatalog) -> None:
    data = _set("s19_sleeping")
    data["get_miner_conf.cgi"]["bitmain-work-mode"] = "0"
    sample = PARSER.parse(data, _ctx(profiles))
    assert (sample.status, sample.mode) == (MinerStatus.ERROR, Mode.NORMAL)
    assert [b.chips_ok for b in sample.boards] == [None, 0, 0]  # asleep? no: 'x' chips are bad chips now
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s19", 0.0, Mode.NORMAL))


def test_legacy_mode_254_means_asleep(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19_sleeping_stats.json")
    _stats_entry(data)["Mode"] = 254
    sample = PARSER.parse(data, _ctx(profiles))
    assert (sample.status, sample.mode) == (MinerStatus.SLEEPING, Mode.SLEEP)


def test_configured_to_sleep_but_still_hashing_is_mining(profiles: ProfileCatalog) -> None:
    sample = _parse("s19pro", profiles, **{"get_miner_conf.cgi": {"bitmain-work-mode": "1"}})
    assert (sample.status, sample.mode) == (MinerStatus.MINING, Mode.SLEEP)
    assert all(b.active for b in sample.boards)
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s19_pro", 110.56689))
    assert any("still hashing" in e for e in sample.errors)


# --- S19 overheating (stats only; chains shut down, 'xxx') ------------------------------------------


def test_s19_overheating_reads_its_temperatures(profiles: ProfileCatalog) -> None:
    sample = PARSER.parse(capture("antminer", **SETS["s19_overheating"]), _ctx(profiles))
    assert sample.status is MinerStatus.ERROR  # not hashing, every chip 'x', not asleep (no conf says so)
    assert sample.mode is None
    assert sample.hashrate_ths == 0.0
    assert sample.hashrate_avg_ths == pytest.approx(0.73737)
    assert sample.expected_ths == pytest.approx(111.859)
    assert sample.uptime_s == 12122
    assert [b.slot for b in sample.boards] == [1, 2, 3]  # chain 4 is an empty slot
    assert [(b.temp_chip_c, b.temp_board_c) for b in sample.boards] == [
        (93.0, 88.0),
        (94.0, 89.0),
        (97.0, 92.0),
    ]
    assert [(b.chips_ok, b.chips_expected, b.active) for b in sample.boards] == [(0, 114, True)] * 3
    assert [b.hashrate_ths for b in sample.boards] == [0.0, 0.0, 0.0]
    assert sample.temp_max_c == 97.0
    assert sample.fans_rpm == (5160, 5280, 6240, 6120)
    assert (sample.inlet_c, sample.outlet_c) == (59.0, 92.0)  # min(75,59,76,62,75,61), max(88,78,...,92,82)
    assert sample.hw_errors == 1
    assert (sample.pool_url, sample.accepted, sample.rejected) == (None, None, None)
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s19_pro", 0.0))
    assert sample.identity is not None and sample.identity.model == "S19 Pro"


# --- S19 Pro, 2022 firmware (full RPC set) ----------------------------------------------------------


def test_s19pro_full_set(profiles: ProfileCatalog) -> None:
    sample = _parse("s19pro", profiles)
    assert sample.status is MinerStatus.MINING
    assert sample.mode is None  # "Mode": 2 while hashing at 110 TH/s: not a sleep flag, meaning unknown
    assert sample.hashrate_ths == pytest.approx(110.56689)  # GHS 5s
    assert sample.hashrate_avg_ths == pytest.approx(111.83463)  # stats GHS av (same snapshot as the boards)
    assert sample.expected_ths == pytest.approx(110.0)
    assert sample.expected_ths_source is Source.MEASURED
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s19_pro", 110.56689))
    assert sample.power_source is Source.ESTIMATED
    assert sample.fans_rpm == (6000, 5880, 5040, 5040)
    assert sample.uptime_s == 50474
    assert (sample.accepted, sample.rejected, sample.hw_errors) == (4057, 11, 562)
    assert sample.pool_url == "stratum+tcp://btc.global.luxor.tech:700"
    assert [p.active for p in sample.pools] == [True, False, False]
    assert sample.last_share_ts == 1755615292  # devs "Last Share Time"; pools only say "0:00:03"
    assert (sample.inlet_c, sample.outlet_c) == (44.0, 66.0)
    assert sample.errors == ()


def test_s19pro_boards(profiles: ProfileCatalog) -> None:
    boards = _parse("s19pro", profiles).boards
    assert [b.slot for b in boards] == [1, 2, 3]
    assert [b.hashrate_ths for b in boards] == pytest.approx([37.6033, 35.53622, 37.42738])
    assert [(b.chips_ok, b.chips_expected) for b in boards] == [(114, 114)] * 3  # 38 x 'ooo'
    assert [(b.temp_chip_c, b.temp_board_c) for b in boards] == [(78.0, 73.0), (71.0, 66.0), (69.0, 64.0)]
    assert [b.hw_errors for b in boards] == [183, 195, 184]
    assert [b.expected_ths for b in boards] == [None, None, None]  # no chain_rateidealN on this firmware


def test_s19pro_identity(profiles: ProfileCatalog) -> None:
    identity = PARSER.identify(_set("s19pro"), _ctx(profiles))
    assert (identity.make, identity.model, identity.profile_key) == (
        "Antminer",
        "S19 Pro",
        "antminer_s19_pro",
    )
    assert identity.firmware_version == "Tue Dec 6 16:12:30 CST 2022"  # whitespace collapsed
    assert identity.api_version == "3.1"
    assert identity.mac is None and identity.serial is None


def test_keyed_stats_under_the_cgi_key_parse_the_same(profiles: ProfileCatalog) -> None:
    rpc = _parse("s19pro", profiles)
    data = _set("s19pro")
    data["stats.cgi"] = data.pop("stats")
    assert PARSER.parse(data, _ctx(profiles)) == rpc


def test_rate_unit_is_respected(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19pro_fw2022_stats.json")
    entry = _stats_entry(data)
    entry.update({"rate_unit": "TH", "GHS 5s": 110.56689, "total_rateideal": 110.0, "chain_rate1": "37.6033"})
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.hashrate_ths == pytest.approx(110.56689)
    assert sample.expected_ths == pytest.approx(110.0)
    assert sample.boards[0].hashrate_ths == pytest.approx(37.6033)


def test_zero_rate_with_healthy_chips_is_idle(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19pro_fw2022_stats.json")
    entry = _stats_entry(data)
    entry.update({"GHS 5s": 0.0, "chain_rate1": "0.00", "chain_rate2": "0.00", "chain_rate3": "0.00"})
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.status is MinerStatus.IDLE
    assert [b.chips_ok for b in sample.boards] == [114, 114, 114]


def test_without_a_real_time_rate_the_boards_are_summed(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19pro_fw2022_stats.json")
    del _stats_entry(data)["GHS 5s"]
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.hashrate_ths == pytest.approx(37.6033 + 35.53622 + 37.42738)


def test_an_error_summary_is_noted_and_the_rest_still_parses(profiles: ProfileCatalog) -> None:
    denied = {"STATUS": [{"STATUS": "E", "When": 0, "Code": 45, "Msg": "Access denied to 'summary' command"}]}
    sample = _parse("s19pro", profiles, summary=denied)
    assert sample.hashrate_ths == pytest.approx(110.56689)
    assert sample.errors == ("summary: firmware error 45: Access denied to 'summary' command",)
    assert (sample.accepted, sample.rejected) == (4057, 11)  # from pools
    assert sample.hw_errors == 562  # stats no_matching_work


def test_no_stratum_active_flag_means_the_highest_priority_alive_pool(profiles: ProfileCatalog) -> None:
    data = _set("s19pro")
    pools = copy.deepcopy(data["pools"])
    for pool in pools["POOLS"]:
        del pool["Stratum Active"]
    pools["POOLS"][0]["Status"] = "Dead"
    sample = _parse("s19pro", profiles, pools=pools)
    assert [p.active for p in sample.pools] == [False, True, False]


def test_web_pools_with_lower_case_keys(profiles: ProfileCatalog) -> None:
    pools_cgi = {
        "STATUS": {"STATUS": "S", "when": 0, "Msg": "pools", "api_version": "1.0.0"},
        "POOLS": [
            {
                "index": 0,
                "url": "stratum+tcp://pool.example:3333",
                "user": "w.1",
                "status": "Alive",
                "priority": 0,
                "accepted": 10,
                "rejected": 1,
                "lstime": "0:00:01",
            },
        ],
    }
    sample = _parse("s21_web", profiles, **{"pools.cgi": pools_cgi})
    assert sample.pool_url == "stratum+tcp://pool.example:3333"
    assert (sample.accepted, sample.rejected) == (10, 1)
    assert sample.pools[0].user == "w.1"


def test_without_a_profile_there_is_no_power_estimate(profiles: ProfileCatalog) -> None:
    sample = PARSER.parse(_set("s19pro"), _ctx(None))
    assert (sample.power_w, sample.power_source) == (None, None)
    assert sample.expected_ths == pytest.approx(110.0)  # the firmware's own ideal needs no profile
    assert sample.identity is not None and sample.identity.profile_key is None


def test_without_any_ideal_the_profile_gives_expected(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19pro_fw2022_stats.json")
    del _stats_entry(data)["total_rateideal"]
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.expected_ths == pytest.approx(profiles.get("antminer_s19_pro").nominal_ths)
    assert sample.expected_ths_source is Source.ESTIMATED


# --- S21, web CGI only (list-shaped stats, STATUS as an object) -------------------------------------


@pytest.mark.parametrize("name", ["s21_web", "s21_web_b"])
def test_s21_web_set(profiles: ProfileCatalog, name: str) -> None:
    sample = _parse(name, profiles)
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(206.9018)  # rate_5s, GH/s
    assert sample.hashrate_avg_ths == pytest.approx(203.85636)
    assert sample.expected_ths == pytest.approx(200.0)
    assert sample.uptime_s == 8152  # stats.cgi elapsed
    assert sample.fans_rpm == (7000, 7000, 7000, 7000)
    assert (sample.inlet_c, sample.outlet_c) == (54.0, 68.0)
    assert sample.hw_errors == 2  # summary.cgi hw_all
    assert (sample.pool_url, sample.pools, sample.accepted) == (None, (), None)  # no pools.cgi captured
    assert sample.mode is None
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(_watts(profiles, "antminer_s21", 206.9018))
    assert sample.errors == ()


def test_s21_boards(profiles: ProfileCatalog) -> None:
    boards = _parse("s21_web", profiles).boards
    assert [b.slot for b in boards] == [1, 2, 3]  # index 0..2, numbered like the keyed RPC chains
    assert [b.hashrate_ths for b in boards] == pytest.approx([67.29341, 68.91675, 70.69163])
    assert [b.expected_ths for b in boards] == pytest.approx([67.525] * 3)
    assert [(b.chips_ok, b.chips_expected) for b in boards] == [(108, 108)] * 3
    assert [(b.temp_chip_c, b.temp_board_c) for b in boards] == [(73.0, 68.0), (72.0, 67.0), (73.0, 68.0)]
    assert [b.hw_errors for b in boards] == [0, 1, 1]
    assert [b.serial for b in boards] == ["SMTTYRHBDJAAI019D", "SMTTYRHBDJAAI019N", "SMTTYRHBDJAAI019S"]


@pytest.mark.parametrize(
    ("system_file", "mac", "serial", "fs_version"),
    [
        ("s21_get_system_info.cgi.json", "02:55:97:22:3M:72", "THQING0BDJAB024NF", "FR-1.12(251009-S21)"),
        (
            "s21_get_system_info.cgi_b.json",
            "02:50:53:09:DA:D9",
            "SMTTATUBDJAAI00A5",
            "Thu Jul 11 16:38:25 CST 2024",
        ),
    ],
)
def test_s21_identity(
    profiles: ProfileCatalog, system_file: str, mac: str, serial: str, fs_version: str
) -> None:
    alone = PARSER.identify(capture("antminer", **{"get_system_info.cgi": system_file}), _ctx(profiles))
    assert (alone.model, alone.mac, alone.serial, alone.hostname) == ("S21", mac, serial, "Antminer")
    assert alone.firmware_version == fs_version  # system_filesystem_version when nothing better
    assert alone.profile_key == "antminer_s21"
    data = capture("antminer", **{"stats.cgi": "s21_stats.cgi.json", "get_system_info.cgi": system_file})
    full = PARSER.identify(data, _ctx(profiles))
    assert full.firmware_version == "Thu Jul 11 16:38:25 CST 2024"  # INFO.CompileTime comes first
    assert full.api_version == "1.0.0"  # STATUS.api_version of the list-shaped stats
    assert full.mac == mac


def test_new_api_stats_over_rpc_parse_like_the_cgi(profiles: ProfileCatalog) -> None:
    web = PARSER.parse(capture("antminer", **{"stats.cgi": "s21_stats.cgi.json"}), _ctx(profiles))
    rpc = PARSER.parse(capture("antminer", stats="s21_stats.cgi.json"), _ctx(profiles))
    assert rpc == web
    assert rpc.hashrate_ths == pytest.approx(206.9018)


def test_new_api_miner_mode_and_chip_map(profiles: ProfileCatalog) -> None:
    data = capture("antminer", **{"stats.cgi": "s21_stats.cgi.json"})
    entry = data["stats.cgi"]["STATS"][0]
    entry["miner-mode"] = 3
    entry["chain"][1]["asic"] = "oooox" + "o" * 103
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.mode is Mode.LOW
    assert (sample.boards[1].chips_ok, sample.boards[1].chips_expected) == (107, 108)


def test_summary_cgi_failed_checks_are_errors(profiles: ProfileCatalog) -> None:
    data = _set("s21_web")
    data["summary.cgi"]["SUMMARY"][0]["status"][2] = {
        "type": "fans",
        "status": "e",
        "code": 1,
        "msg": "fan lost",
    }
    sample = PARSER.parse(data, _ctx(profiles))
    assert sample.status is MinerStatus.MINING  # still hashing: the rules engine weighs the fan
    assert sample.errors == ("summary.cgi: fans check 'e' code 1: fan lost",)
    entry = data["stats.cgi"]["STATS"][0]
    entry["rate_5s"] = 0
    assert PARSER.parse(data, _ctx(profiles)).status is MinerStatus.ERROR


def test_hydro_models_report_no_inlet_outlet(profiles: ProfileCatalog) -> None:
    data = _set("s21_web")
    data["stats.cgi"]["INFO"]["type"] = "Antminer S21 Hyd."
    sample = PARSER.parse(data, _ctx(profiles))
    assert (sample.inlet_c, sample.outlet_c) == (None, None)


def test_summary_only_still_gives_a_sample(profiles: ProfileCatalog) -> None:
    sample = PARSER.parse(capture("antminer", summary="s19pro_fw2022_summary.json"), _ctx(profiles))
    assert sample.hashrate_ths == pytest.approx(110.56689)
    assert sample.uptime_s == 50474
    assert sample.boards == ()
    assert "stats missing: no boards, fans or temperatures this poll" in sample.errors


# --- failures ---------------------------------------------------------------------------------------


def test_no_stats_and_no_summary_is_a_protocol_error(profiles: ProfileCatalog) -> None:
    with pytest.raises(ProtocolError, match="stats"):
        PARSER.parse(capture("antminer", pools="s9_bmminer_pools.json"), _ctx(profiles))


@pytest.mark.parametrize(("code", "error"), [(45, AuthFailed), (14, Unsupported), (23, ProtocolError)])
def test_an_error_reply_instead_of_stats_raises_the_firmwares_error(
    profiles: ProfileCatalog, code: int, error: type[Exception]
) -> None:
    reply = {
        "STATUS": [{"STATUS": "E", "When": 0, "Code": code, "Msg": "nope", "Description": "cgminer 1.0.0"}]
    }
    with pytest.raises(error, match=f"stats: firmware error {code}"):
        PARSER.parse({"stats": reply, "pools": {}}, _ctx(profiles))


def test_a_non_object_stats_falls_back_to_summary(profiles: ProfileCatalog) -> None:
    sample = _parse("s19pro", profiles, stats=["not", "an", "object"])
    assert sample.hashrate_ths == pytest.approx(110.56689)
    assert "stats: expected a JSON object, got list" in sample.errors


def test_identify_with_nothing_to_identify_from(profiles: ProfileCatalog) -> None:
    hinted = ParseContext(miner_id="m1", ts=TS, profiles=profiles, model_hint="S19 Pro")
    with pytest.raises(ProtocolError, match="nothing to identify"):
        PARSER.identify(capture("antminer", pools="s9_bmminer_pools.json"), hinted)


def test_the_model_hint_fills_in_when_the_firmware_names_no_model(profiles: ProfileCatalog) -> None:
    data = capture("antminer", stats="s19pro_fw2022_stats.json")
    del data["stats"]["STATS"][0]["Type"]
    hinted = ParseContext(miner_id="m1", ts=TS, profiles=profiles, model_hint="S19 Pro")
    identity = PARSER.identify(data, hinted)
    assert (identity.model, identity.profile_key) == ("S19 Pro", "antminer_s19_pro")
    assert PARSER.identify(data, _ctx(profiles)).model is None  # CompileTime alone still identifies


# --- robustness -------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.just("1-2-x-4"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    if data.draw(st.integers(0, 6)) == 0:
        return data.draw(_JSON)
    if isinstance(value, dict) and depth < 5:
        return {k: _mutate(v, data, depth + 1) for k, v in value.items() if data.draw(st.integers(0, 12))}
    if isinstance(value, list) and depth < 5:
        return [_mutate(v, data, depth + 1) for v in value]
    return value


@given(name=st.sampled_from(sorted(SETS)), data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_whole_capture_sets_with_wrong_values_raise_only_device_errors(
    name: str, data: st.DataObject
) -> None:
    """Every reply of a set mutated at once (a summary that disagrees with its stats, a pool list of
    numbers...): the parser answers with a Sample or a device error, never a crash."""
    mutated = {key: _mutate(reply, data) for key, reply in _set(name).items()}
    for parse in (PARSER.parse, PARSER.identify):
        with contextlib.suppress(DeviceError):
            parse(mutated, _ctx(None))
