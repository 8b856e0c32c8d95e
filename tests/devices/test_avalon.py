"""Avalon parser against every capture in tests/fixtures/devices/avalon (values read from the files by hand).

A1246: one `stats` reply (cgminer 4.11.1, MM string under "MM ID0"), mining. Avalon Q: a full set from a
unit that was soft-off at capture time (SoftOFF[4], GHSspd 0, fans 0, "Work: In Idle").
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devices.errors import AuthFailed, ProtocolError, Unsupported
from gateway.devices.model import BoardReading, MinerStatus, Mode, Source
from gateway.devices.parsers import avalon_mm
from gateway.devices.parsers.avalon import PARSER, normalize_model
from gateway.devices.parsers.avalon_control import interpret_ascset
from tests.devices.capture import PROFILES, TS, capture, ctx, reply

Q_FULL = {
    "stats": "avalon_q_stats.json",
    "summary": "avalon_q_summary.json",
    "pools": "avalon_q_pools.json",
    "version": "avalon_q_version.json",
}


# --- A1246 ------------------------------------------------------------------------------------------


def test_a1246_stats_alone_gives_a_full_mining_sample() -> None:
    sample = PARSER.parse(capture("avalon", stats="a1246_stats.json"), ctx())

    assert sample.status is MinerStatus.MINING
    assert sample.ts == TS
    assert sample.hashrate_ths == pytest.approx(81.07268)  # GHSspd, real time
    assert sample.hashrate_avg_ths == pytest.approx(79.65663)  # GHSavg
    assert sample.expected_ths == pytest.approx(83.92304)  # GHSmm, the MM's ideal
    assert sample.expected_ths_source is Source.MEASURED
    assert sample.power_w == 3189.0  # PS[4]; PS[2] x PS[3] = 13.16 V x 242 A = 3185 W agrees
    assert sample.power_source is Source.MEASURED
    assert sample.power_limit_w == 3200.0  # MPO
    assert sample.fans_rpm == (5344, 5392, 5349, 5309)
    assert sample.inlet_c == 30.0  # Temp
    assert sample.outlet_c is None
    assert sample.hw_errors == 2735  # MM HW (no summary in this set)
    assert sample.accepted is None and sample.rejected is None
    assert sample.uptime_s == 24684
    assert sample.mode is None  # WORKMODE[1] has no known meaning on the A-series
    assert sample.errors == ()
    assert sample.pools == () and sample.pool_url is None


def test_a1246_boards_come_from_the_per_board_mm_tokens() -> None:
    sample = PARSER.parse(capture("avalon", stats="a1246_stats.json"), ctx())

    assert len(sample.boards) == 3
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([26.90701, 26.02506, 26.72456])  # MGHS
    assert sum(b.hashrate_ths or 0 for b in sample.boards) == pytest.approx(79.65663)  # == GHSavg
    assert [b.temp_chip_c for b in sample.boards] == [77.0, 77.0, 76.0]  # MTmax
    assert [b.chips_ok for b in sample.boards] == [120, 120, 120]  # non-zero MW0..MW2 entries
    assert [b.chips_expected for b in sample.boards] == [120, 120, 120]  # TA[360] / 3
    assert all(b.active and b.temp_board_c is None for b in sample.boards)
    assert sample.temp_max_c == 77.0


def test_a1246_identity_comes_from_the_mm_ver_token() -> None:
    identity = PARSER.identify(capture("avalon", stats="a1246_stats.json"), ctx())

    assert identity.make == "Avalon"
    assert identity.model == "A1246"  # Ver[1246-83-...]: 83 is the unit's TH/s bin, not the model
    assert identity.firmware_version == "21072802_4ec6bb0_211fc46"
    assert identity.serial == "02010000cbd2fd6d"  # DNA
    assert identity.mac is None and identity.api_version is None
    assert identity.profile_key == "avalon_a1246"


# --- Avalon Q (soft-off) ---------------------------------------------------------------------------


def test_avalon_q_soft_off_is_sleeping_with_estimated_sleep_power() -> None:
    sample = PARSER.parse(capture("avalon", **Q_FULL), ctx())
    profile = PROFILES.get("avalon_q")

    assert sample.status is MinerStatus.SLEEPING
    assert sample.mode is Mode.SLEEP
    assert sample.hashrate_ths == 0.0  # GHSspd[0.00]: a real zero, not a missing value
    assert sample.hashrate_avg_ths == pytest.approx(44.49941)  # GHSavg from stats
    assert sample.expected_ths == pytest.approx(55.03279)  # GHSmm: the Eco-level ideal, reported asleep too
    assert sample.expected_ths_source is Source.MEASURED
    # PS[4] is 0 W on the hash rail while soft-off; the controller still draws: profile sleep watts.
    assert sample.power_w == profile.sleep_w
    assert sample.power_source is Source.ESTIMATED
    assert sample.power_limit_w == 800.0  # MPO
    assert sample.fans_rpm == (0, 0, 0, 0)  # the profile has 4 fans: stopped, not absent
    assert sample.inlet_c == 26.0  # ITemp
    assert sample.outlet_c == 27.0  # HBOTemp
    assert sample.accepted == 890 and sample.rejected == 2 and sample.hw_errors == 0
    assert sample.uptime_s == 37714  # summary Elapsed
    assert sample.errors == ()


def test_avalon_q_board_is_inactive_while_soft_off() -> None:
    sample = PARSER.parse(capture("avalon", **Q_FULL), ctx())

    # MGHS[44499.41] is the board's average; its real-time rate is GHSspd's 0. PVT/MW data is frozen
    # (chips at 58-71 C, 1.8 h after softoff, with ITemp 26), so no chip count or chip temperature.
    assert sample.boards == (
        BoardReading(slot=0, hashrate_ths=0.0, chips_ok=None, chips_expected=160, active=False),
    )
    assert sample.boards_active == 0
    assert sample.temp_max_c is None


def test_avalon_q_pools_and_identity() -> None:
    sample = PARSER.parse(capture("avalon", **Q_FULL), ctx())

    assert sample.pool_url == "stratum+tcp://pool.example.com:4444"
    (pool,) = sample.pools
    assert pool.user == "worker1" and pool.status == "Alive" and pool.active
    assert pool.accepted == 890 and pool.rejected == 2
    # "Last Share Time": 31279 with Elapsed 37714: a monotonic clock, not an epoch.
    assert pool.last_share_ts is None and sample.last_share_ts is None
    identity = sample.identity
    assert identity is not None
    assert identity.model == "Avalon Q"
    assert identity.firmware_version == "25052801_14a19a2"  # LVERSION
    assert identity.api_version == "3.7"
    assert identity.mac == "AA:BB:CC:DD:EE:FF"
    assert identity.serial == "01234567890123456789012345678901"  # version DNA (masked by contributor)
    assert identity.profile_key == "avalon_q"


def test_avalon_q_identity_from_version_alone() -> None:
    identity = PARSER.identify(capture("avalon", version="avalon_q_version.json"), ctx())

    assert (identity.make, identity.model, identity.firmware_version) == (
        "Avalon",
        "Avalon Q",
        "25052801_14a19a2",
    )
    assert identity.profile_key == "avalon_q"


def test_avalon_q_litestats_is_the_same_mm_string_without_board_detail() -> None:
    sample = PARSER.parse(capture("avalon", litestats="avalon_q_litestats.json"), ctx())

    assert sample.status is MinerStatus.SLEEPING
    assert sample.hashrate_avg_ths == pytest.approx(44.35083)
    assert sample.uptime_s == 37977  # no cgminer Elapsed beside the string: the MM's own
    assert sample.boards[0].chips_expected == 160
    assert sample.identity is not None and sample.identity.model == "Avalon Q"
    assert sample.identity.serial is None  # DNA[<DELETED>] is not an identifier


def test_avalon_q_summary_alone_is_idle_not_sleeping() -> None:
    """Without the MM string nothing says soft-off: 0 H/s and no error is idle; the profile fills in."""
    sample = PARSER.parse(capture("avalon", summary="avalon_q_summary.json"), ctx("Avalon Q"))
    profile = PROFILES.get("avalon_q")

    assert sample.status is MinerStatus.IDLE
    assert sample.hashrate_ths == 0.0
    assert sample.hashrate_avg_ths == pytest.approx(44.53960186)
    assert sample.expected_ths == profile.nominal_ths
    assert sample.expected_ths_source is Source.ESTIMATED
    assert sample.power_w == pytest.approx(profile.estimate_power_w(0.0, None))
    assert sample.power_source is Source.ESTIMATED
    assert sample.boards == () and sample.fans_rpm == ()


def test_avalon_q_report_commands_without_miner_data_are_a_protocol_error() -> None:
    files = {
        key: f"avalon_q_{key}.json" for key in ("devs", "devdetails", "config", "check", "coin", "pools")
    }
    with pytest.raises(ProtocolError, match=r"MM ID0.*SUMMARY"):
        PARSER.parse(capture("avalon", **files), ctx())


def test_extra_report_commands_do_not_change_the_sample() -> None:
    extra = {key: f"avalon_q_{key}.json" for key in ("devs", "devdetails", "config", "check", "coin")}
    assert PARSER.parse(capture("avalon", **Q_FULL, **extra), ctx()) == PARSER.parse(
        capture("avalon", **Q_FULL), ctx()
    )


def test_access_denied_on_the_only_data_command_is_auth_failed() -> None:
    denied = {"STATUS": [{"STATUS": "E", "Code": 45, "Msg": "Access denied to 'stats' command"}], "id": 1}
    with pytest.raises(AuthFailed, match="45"):
        PARSER.parse({"stats": denied}, ctx())


def test_error_reply_to_an_optional_command_is_noted_not_fatal() -> None:
    denied = {"STATUS": [{"STATUS": "E", "Code": 45, "Msg": "Access denied to 'version' command"}], "id": 1}
    sample = PARSER.parse({**capture("avalon", stats="a1246_stats.json"), "version": denied}, ctx())
    assert sample.status is MinerStatus.MINING
    assert sample.errors == ("version: firmware error 45: Access denied to 'version' command",)


def test_invalid_command_on_an_optional_command_is_silent() -> None:
    invalid = {"STATUS": [{"STATUS": "E", "Code": 14, "Msg": "Invalid command"}], "id": 1}
    sample = PARSER.parse({**capture("avalon", stats="a1246_stats.json"), "version": invalid}, ctx())
    assert sample.errors == ()


def test_mm_error_codes_become_sample_errors() -> None:
    stats = reply("avalon/a1246_stats.json")
    mm = stats["STATS"][0]["MM ID0"]
    stats["STATS"][0]["MM ID0"] = mm.replace("ECHU[0 0 0]", "ECHU[0 512 0]").replace("ECMM[0]", "ECMM[2]")
    sample = PARSER.parse({"stats": stats}, ctx())
    assert sample.errors == ("ECMM 2", "ECHU board 1: 512")
    assert sample.status is MinerStatus.MINING


# --- model names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "model"),
    [
        ("1246", "A1246"),
        ("AvalonMiner 1246", "A1246"),
        ("AvalonMiner 1246-83", "A1246"),  # version PROD with the hashrate bin
        ("1246-83", "A1246"),  # version MODEL
        ("A1246", "A1246"),
        ("1166pro", "A1166Pro"),
        ("Q", "Avalon Q"),
        ("Avalon Q", "Avalon Q"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_model(reported: str | None, model: str | None) -> None:
    assert normalize_model(reported) == model


# --- the MM string tokenizer -------------------------------------------------------------------------


def test_tokens_keep_spaces_colons_and_empty_values() -> None:
    text = "Ver[Q-1] SYSTEMSTATU[Work: In Idle, Hash Board: 1] SSID[] PVT_T0[ 63  70 ] Nonce Mask[25]"
    assert avalon_mm.tokens(text) == {
        "Ver": "Q-1",
        "SYSTEMSTATU": "Work: In Idle, Hash Board: 1",
        "SSID": "",
        "PVT_T0": "63  70",
        "Nonce Mask": "25",
    }


def test_tokens_nested_brackets_stay_inside_their_value() -> None:
    assert avalon_mm.tokens("A[x [y] z] B[1]") == {"A": "x [y] z", "B": "1"}


def test_tokens_truncated_string_keeps_the_complete_tokens() -> None:
    assert avalon_mm.tokens("GHSspd[81072.68] GHSmm[83923") == {"GHSspd": "81072.68"}


def test_tokens_first_occurrence_wins() -> None:
    assert avalon_mm.tokens("Fan1[10] Fan1[20]") == {"Fan1": "10"}


def test_sections_split_the_avalon_q_envelopes() -> None:
    parts = avalon_mm.sections("'STATS':{Ver[Q-1] MPO[800]} 'HB0':{MW0[1 0 2]}")
    assert parts == {"STATS": {"Ver": "Q-1", "MPO": "800"}, "HB0": {"MW0": "1 0 2"}}
    assert avalon_mm.sections("Ver[1246-83-x] TA[360]") == {"": {"Ver": "1246-83-x", "TA": "360"}}


def test_values_keep_positions_of_non_numbers() -> None:
    assert avalon_mm.values("0 1214 x 242") == [0.0, 1214.0, None, 242.0]
    assert avalon_mm.value("72%") == 72.0
    assert avalon_mm.value("1 2") is None  # a list is not a single value
    assert avalon_mm.value(None) is None


def test_every_mm_string_in_the_captures_tokenizes_completely() -> None:
    for name, expected in (
        ("a1246_stats.json", 73),
        ("avalon_q_stats.json", 67),
        ("avalon_q_litestats.json", 67),
    ):
        entry = reply(f"avalon/{name}")["STATS"][0]
        mm, _ = avalon_mm.find_mm(entry)
        raw = next(v for k, v in entry.items() if k.startswith("MM ID"))
        assert len(mm) == expected == raw.count("[")  # one token per bracket: none lost or merged
        assert mm["Ver"] and mm["GHSavg"]
    _, boards = avalon_mm.find_mm(reply("avalon/avalon_q_stats.json")["STATS"][0])
    assert set(boards) == {"HB0"}
    assert len(avalon_mm.values(boards["HB0"]["PVT_T0"])) == 160


# --- ascset control replies ----------------------------------------------------------------------


def test_ascset_softoff_reply() -> None:
    result = interpret_ascset(reply("avalon/avalon_q_ascset_softoff.json"))
    assert result.ok and result.code == 118
    assert result.detail == "success softoff:1753434821"
    assert result.effective_at == 1753434821


def test_ascset_softon_reply() -> None:
    result = interpret_ascset(reply("avalon/avalon_q_ascset_softon.json"))
    assert result.ok and result.effective_at == 1753434757


def test_ascset_workmode_reply() -> None:
    result = interpret_ascset(reply("avalon/avalon_q_ascset_workmode.json"))
    assert result.ok and result.code == 119 and result.message == "ASC 0 set OK"


def test_ascset_help_lists_the_options() -> None:
    result = interpret_ascset(reply("avalon/avalon_q_ascset_help.json"))
    assert result.ok
    assert {"softoff", "softon", "workmode", "worklevel", "reboot"} <= set(result.options)
    assert result.options[0] == "help" and len(result.options) == 23


def _status(letter: str, code: int, msg: str) -> dict[str, Any]:
    return {"STATUS": [{"STATUS": letter, "Code": code, "Msg": msg, "Description": "cgminer 4.11.1"}]}


def test_ascset_failures() -> None:
    refused = interpret_ascset(_status("E", 120, "ASC 0 set failed: invalid workmode"))
    assert not refused.ok and refused.detail == "invalid workmode"
    info_failure = interpret_ascset(_status("I", 118, "ASC 0 set info: failed softoff"))
    assert not info_failure.ok
    with pytest.raises(AuthFailed):
        interpret_ascset(_status("E", 45, "Access denied to 'ascset' command"))
    with pytest.raises(Unsupported):
        interpret_ascset(_status("E", 14, "Invalid command"))
    with pytest.raises(ProtocolError):
        interpret_ascset({"id": 1})
