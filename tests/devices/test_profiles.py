"""Firmware profiles: the shipped tables load, match what real firmware reports, agree with the captures,
stay physically sane, and a broken file fails loudly with its path and the field at fault."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.model import Mode
from gateway.devices.profiles import (
    MinerProfile,
    ProfileCatalog,
    ProfileError,
    default_profiles_dir,
    load_profiles,
    model_revision,
    normalize_model_name,
)
from tests.devices.capture import reply

PROFILES_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
CATALOG = load_profiles(PROFILES_DIR)
PROFILES = sorted(CATALOG, key=lambda p: p.key)

REQUIRED = {
    "antminer_s9": ("Antminer", "S9"),
    "antminer_s17_pro": ("Antminer", "S17 Pro"),
    "antminer_s19": ("Antminer", "S19"),
    "antminer_s19_pro": ("Antminer", "S19 Pro"),
    "antminer_s19j_pro": ("Antminer", "S19j Pro"),
    "antminer_s19k_pro": ("Antminer", "S19k Pro"),
    "antminer_s19_xp": ("Antminer", "S19 XP"),
    "antminer_s21": ("Antminer", "S21"),
    "antminer_s21_pro": ("Antminer", "S21 Pro"),
    "antminer_t21": ("Antminer", "T21"),
    "whatsminer_m20s": ("Whatsminer", "M20S"),
    "whatsminer_m30s_plus": ("Whatsminer", "M30S+"),
    "whatsminer_m31s": ("Whatsminer", "M31S"),
    "whatsminer_m50s": ("Whatsminer", "M50S"),
    "whatsminer_m60s": ("Whatsminer", "M60S"),
    "avalon_a1246": ("Avalon", "A1246"),
    "avalon_q": ("Avalon", "Q"),
}
MAKER = {"Antminer": "Bitmain", "Whatsminer": "MicroBT", "Avalon": "Canaan"}
SLEEP_METHODS = {
    "Antminer": {"antminer_miner_mode", "none"},
    "Whatsminer": {"whatsminer_power_off"},
    "Avalon": {"avalon_softoff"},
}


def by_key(key: str) -> MinerProfile:
    return CATALOG.get(key)


def ids(profile: MinerProfile) -> str:
    return profile.key


# --- the shipped set ---------------------------------------------------------------------------------


def test_every_shipped_file_loads_and_every_required_model_is_there() -> None:
    files = sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))
    assert [p.key for p in PROFILES] == files
    assert set(REQUIRED) <= set(files)
    for key, (make, model) in REQUIRED.items():
        assert (by_key(key).make, by_key(key).model) == (make, model)


def test_the_default_directory_is_the_checkout_and_the_env_var_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_profiles_dir() == PROFILES_DIR
    assert len(load_profiles()) == len(CATALOG)
    (tmp_path / "only_one.toml").write_text(GOOD, encoding="utf-8")
    monkeypatch.setenv("HASHINSIGHT_PROFILES_DIR", str(tmp_path))
    assert [p.key for p in load_profiles()] == ["only_one"]


def test_no_two_profiles_claim_the_same_spelling() -> None:
    seen: dict[str, str] = {}
    for profile in PROFILES:
        for name in (profile.model, *profile.aliases):
            normalized = normalize_model_name(name)
            assert seen.setdefault(normalized, profile.key) == profile.key, f"{name!r} is claimed twice"


@pytest.mark.parametrize("profile", PROFILES, ids=ids)
def test_matches_by_model_and_aliases_and_every_alias_is_needed(profile: MinerProfile) -> None:
    assert CATALOG.match(profile.make, profile.model) is profile
    assert CATALOG.match(profile.make.upper(), profile.model) is profile
    assert CATALOG.match(None, profile.model) is profile
    own = normalize_model_name(profile.model)
    for alias in profile.aliases:
        assert CATALOG.match(profile.make, alias) is profile
        # normalize_model_name already folds maker prefixes, Plus/+, revisions and bins: an alias that
        # normalizes to the model name is dead weight and hides which spellings really need one.
        assert normalize_model_name(alias) != own, f"alias {alias!r} is redundant"


def test_a_model_of_another_make_or_an_unknown_model_does_not_match() -> None:
    assert CATALOG.match("Whatsminer", "S19 Pro") is None
    assert CATALOG.match("Antminer", "S19 Pro+") is None
    assert CATALOG.match("Whatsminer", "M30S++_VH20") is None
    assert CATALOG.match("Antminer", None) is None
    assert CATALOG.match("Antminer", "") is None


def _first(path: str, *keys: str | int) -> Any:
    value: Any = reply(path)
    for key in keys:
        value = value[key]
    return value


def _mm(path: str, field: str) -> str:
    """One `Field[...]` token of an Avalon MM string ("MM ID0" on A-series, "MM ID0:Summary" on the Q)."""
    entry = _first(path, "STATS", 0)
    text = next(value for key, value in entry.items() if key.startswith("MM ID0"))
    found = re.search(rf"\b{field}\[([^\]]*)\]", text)
    assert found, field
    return found.group(1)


# Model strings exactly as the captured firmware reported them (tests/fixtures/devices, provenance in its
# README), read from the files rather than copied, so a re-capture cannot drift from this test.
CAPTURED_MODEL_STRINGS: list[tuple[str, tuple[str | int, ...], str]] = [
    ("antminer/s9_bmminer_version.json", ("VERSION", 0, "Type"), "antminer_s9"),  # "Antminer S9\nV1.3.58"
    ("antminer/s9_bmminer_stats.json", ("STATS", 0, "Type"), "antminer_s9"),
    ("antminer/s19_sleeping_version.json", ("VERSION", 0, "Type"), "antminer_s19"),
    ("antminer/s19pro_fw2022_version.json", ("VERSION", 0, "Type"), "antminer_s19_pro"),
    ("antminer/s19_overheating_stats.json", ("STATS", 0, "Type"), "antminer_s19_pro"),
    ("antminer/s21_stats.cgi.json", ("INFO", "type"), "antminer_s21"),
    ("antminer/s21_get_system_info.cgi.json", ("minertype",), "antminer_s21"),
    ("luxos/s19kpro_version.json", ("VERSION", 0, "Type"), "antminer_s19k_pro"),
    ("luxos/s19kpro_config.json", ("CONFIG", 0, "Model"), "antminer_s19k_pro"),
    (
        "braiins/bos_26_04_s21pro_rest_miner_details.json",
        ("miner_identity", "miner_model"),
        "antminer_s21_pro",
    ),
    ("vnish/s21pro_rpc_stats.json", ("STATS", 0, "Type"), "antminer_s21_pro"),  # "... (Vnish 1.2.7)"
    ("vnish/s21pro_web_api_v1_info.json", ("model",), "antminer_s21_pro"),  # "s21pro"
    ("vnish/s21pro_web_api_v1_info.json", ("miner",), "antminer_s21_pro"),
    ("whatsminer/m60s_vk40_v3_get_device_info.json", ("msg", "miner", "type"), "whatsminer_m60s"),
    ("avalon/avalon_q_version.json", ("VERSION", 0, "PROD"), "avalon_q"),
    ("avalon/avalon_q_version.json", ("VERSION", 0, "MODEL"), "avalon_q"),
]


@pytest.mark.parametrize(
    ("path", "keys", "key"),
    CAPTURED_MODEL_STRINGS,
    ids=[f"{c[0]}:{c[1][-1]}" for c in CAPTURED_MODEL_STRINGS],
)
def test_matches_the_model_strings_real_firmware_reports(
    path: str, keys: tuple[str | int, ...], key: str
) -> None:
    profile = by_key(key)
    assert CATALOG.match(profile.make, _first(path, *keys)) is profile


def test_matches_the_avalon_a1246_mm_version() -> None:
    # MM Ver is '<model>-<bin>-<firmware build>': the parser splits the build off, the bin stays.
    model = _mm("avalon/a1246_stats.json", "Ver").rsplit("-", 1)[0]
    assert model == "1246-83"
    assert CATALOG.match("Avalon", model) is by_key("avalon_a1246")


# Spellings from firmware replies published elsewhere (pyasic / asic-rs test data, foreman captures, the
# Whatsminer and Avalon API docs): btminer devdetails "Model", summary "Miner Type", cgminer version PROD.
@pytest.mark.parametrize(
    ("make", "reported", "key"),
    [
        ("Whatsminer", "M20SV10", "whatsminer_m20s"),
        ("Whatsminer", "M20S", "whatsminer_m20s"),
        ("Whatsminer", "M30S+_VE40", "whatsminer_m30s_plus"),
        ("Whatsminer", "M30S+_VH70", "whatsminer_m30s_plus"),
        ("Whatsminer", "M30SPlus", "whatsminer_m30s_plus"),
        ("Whatsminer", "M30S+V40", "whatsminer_m30s_plus"),
        ("Whatsminer", "M31S", "whatsminer_m31s"),
        ("Whatsminer", "M31SV10", "whatsminer_m31s"),
        ("Whatsminer", "M50S_VH30", "whatsminer_m50s"),
        ("Whatsminer", "M50S VJ20", "whatsminer_m50s"),
        ("Whatsminer", "M60S_VK40", "whatsminer_m60s"),
        ("Whatsminer", "WhatsMiner M60S", "whatsminer_m60s"),
        ("Avalon", "AvalonMiner 1246-83", "avalon_a1246"),
        ("Avalon", "1246-81", "avalon_a1246"),
        ("Avalon", "1246", "avalon_a1246"),
        ("Avalon", "Avalon A1246", "avalon_a1246"),
        ("Avalon", "Avalon Q", "avalon_q"),
        ("Antminer", "Antminer S19J Pro", "antminer_s19j_pro"),
        ("Antminer", "Antminer S19K Pro", "antminer_s19k_pro"),
        ("Antminer", "Antminer S19 XP", "antminer_s19_xp"),
        ("Antminer", "Antminer S17 Pro", "antminer_s17_pro"),
        ("Antminer", "Antminer T21", "antminer_t21"),
        ("Antminer", "Antminer S21 Pro (Braiins OS 24.03)", "antminer_s21_pro"),
    ],
)
def test_matches_other_published_firmware_spellings(make: str, reported: str, key: str) -> None:
    assert CATALOG.match(make, reported) is by_key(key)


@pytest.mark.parametrize(
    ("reported", "normalized", "revision"),
    [
        ("Antminer S9\nV1.3.58", "s9", None),
        ("Antminer S19 Pro", "s19pro", None),
        ("S19Pro", "s19pro", None),
        ("s19-pro", "s19pro", None),
        ("Antminer S19k Pro", "s19kpro", None),
        ("Antminer S21 Pro (Vnish 1.2.7)", "s21pro", None),
        ("s21pro", "s21pro", None),
        ("M20SV10", "m20s", "V10"),
        ("M30S+_VE40", "m30s+", "VE40"),
        ("M30SPlus", "m30s+", None),
        ("M30S++ VH20", "m30s++", "VH20"),
        ("M60S_VK40", "m60s", "VK40"),
        ("AvalonMiner 1246-83", "1246", None),
        ("Avalon Q", "q", None),
        ("Q", "q", None),
    ],
)
def test_normalize_model_name_on_real_spellings(reported: str, normalized: str, revision: str | None) -> None:
    assert normalize_model_name(reported) == normalized
    assert model_revision(reported) == revision


# --- agreement with the captures ----------------------------------------------------------------------


def _antminer_rpc(path: str) -> tuple[list[int], int]:
    stats = _first(path, "STATS", 1)
    chips = [v for k, v in sorted(stats.items()) if re.fullmatch(r"chain_acn\d+", k) and v]
    return chips, stats["fan_num"]


def _antminer_web(path: str) -> tuple[list[int], int]:
    stats = _first(path, "STATS", 0)
    return [chain["asic_num"] for chain in stats["chain"]], stats["fan_num"]


def _braiins_rest(path: str) -> tuple[list[int], int]:
    fans = _first(path.replace("miner_hw_hashboards", "cooling_state"), "fans")
    return [board["chips_count"] for board in _first(path, "hashboards")], len(fans)


def _avalon(path: str) -> tuple[list[int], int]:
    boards = int(re.sub(r"\D", "", _mm(path, "SYSTEMSTATU").split("Hash Board:")[1]))
    if boards == 1:  # the Q's single board: TA = chips
        chips = [int(_mm(path, "TA"))]
    else:  # A-series: one PVT_T (per-chip temperature) array per board
        chips = [len(_mm(path, f"PVT_T{board}").split()) for board in range(boards)]
    fans = sum(1 for n in range(1, 9) if re.search(rf"\bFan{n}\[", str(_first(path, "STATS", 0))))
    return chips, fans


def _whatsminer(path: str) -> tuple[list[int], int]:
    boards = _first(path, "DEVS")
    return [b["Effective Chips"] for b in boards], sum(1 for k in boards[0] if k.startswith("Fan Speed"))


# Chips per live board and fans, as the firmware reports them. The S19 capture has one board missing
# (chain 1 absent); every other capture reports every board of its model.
CAPTURED_HARDWARE: list[tuple[str, Callable[[str], tuple[list[int], int]], str]] = [
    ("antminer/s9_bmminer_stats.json", _antminer_rpc, "antminer_s9"),
    ("antminer/s19_sleeping_stats.json", _antminer_rpc, "antminer_s19"),
    ("antminer/s19pro_fw2022_stats.json", _antminer_rpc, "antminer_s19_pro"),
    ("luxos/s19kpro_stats.json", _antminer_rpc, "antminer_s19k_pro"),
    ("vnish/s21pro_rpc_stats.json", _antminer_rpc, "antminer_s21_pro"),
    ("antminer/s21_stats.cgi.json", _antminer_web, "antminer_s21"),
    ("braiins/bos_26_04_s21pro_rest_miner_hw_hashboards.json", _braiins_rest, "antminer_s21_pro"),
    ("avalon/a1246_stats.json", _avalon, "avalon_a1246"),
    ("avalon/avalon_q_stats.json", _avalon, "avalon_q"),
    ("whatsminer/m20s_fw20210322_devs.json", _whatsminer, "whatsminer_m20s"),
    ("whatsminer/m31s_edevs.json", _whatsminer, "whatsminer_m31s"),
]


@pytest.mark.parametrize(("path", "read", "key"), CAPTURED_HARDWARE, ids=[c[0] for c in CAPTURED_HARDWARE])
def test_boards_chips_and_fans_agree_with_the_captures(
    path: str, read: Callable[[str], tuple[list[int], int]], key: str
) -> None:
    profile = by_key(key)
    chips, fans = read(path)
    assert chips and all(count == profile.chips_per_board for count in chips), chips
    assert len(chips) == (2 if key == "antminer_s19" else profile.hashboards)
    assert int(fans) == profile.fans


def test_whatsminer_board_revision_and_count_agree_with_the_captures() -> None:
    assert by_key("whatsminer_m20s").chips_expected("M20SV10") == 105  # the M20S capture is a V10
    info = _first("whatsminer/m60s_vk40_v3_get_device_info.json", "msg", "miner")
    m60s = by_key("whatsminer_m60s")
    assert int(info["board-num"]) == m60s.hashboards
    assert m60s.chips_expected(info["type"]) == m60s.chips_per_board == 225


# Bins of one model are sold under one name (S9 11.5-14 TH/s, M31S 68-76, A1246 81-90), so the rate the
# firmware calls nominal may sit a few percent off the maker's headline figure.
NAMEPLATES: list[tuple[str, Callable[[], float], str]] = [
    (
        "s9",
        lambda: _first("antminer/s9_bmminer_stats.json", "STATS", 1, "total_rateideal") / 1e3,
        "antminer_s9",
    ),
    # two of three boards live: scale to three
    (
        "s19",
        lambda: _first("antminer/s19_sleeping_stats.json", "STATS", 1, "total_rateideal") / 2e3 * 3,
        "antminer_s19",
    ),
    (
        "s19 pro",
        lambda: _first("antminer/s19pro_fw2022_stats.json", "STATS", 1, "total_rateideal") / 1e3,
        "antminer_s19_pro",
    ),
    ("s21", lambda: _first("antminer/s21_stats.cgi.json", "STATS", 0, "rate_ideal") / 1e3, "antminer_s21"),
    (
        "s19k pro",
        lambda: _first("luxos/s19kpro_config.json", "CONFIG", 0, "NameplateTHS"),
        "antminer_s19k_pro",
    ),
    (
        "m20s",
        lambda: _first("whatsminer/m20s_fw20210322_summary.json", "SUMMARY", 0, "Factory GHS") / 1e3,
        "whatsminer_m20s",
    ),
    (
        "m31s",
        lambda: _first("whatsminer/m31s_summary.json", "SUMMARY", 0, "Factory GHS") / 1e3,
        "whatsminer_m31s",
    ),
    ("a1246", lambda: float(_mm("avalon/a1246_stats.json", "GHSmm")) / 1e3, "avalon_a1246"),
]


@pytest.mark.parametrize(("label", "nameplate_ths", "key"), NAMEPLATES, ids=[n[0] for n in NAMEPLATES])
def test_nominal_rate_agrees_with_what_the_firmware_calls_nominal(
    label: str, nameplate_ths: Callable[[], float], key: str
) -> None:
    assert nameplate_ths() == pytest.approx(by_key(key).nominal_ths, rel=0.10), label


def test_estimated_watts_agree_with_firmwares_that_measure() -> None:
    """Where the firmware does report watts, the profile's J/TH at the measured rate lands near them."""
    m20s = _first("whatsminer/m20s_fw20210322_summary.json", "SUMMARY", 0)  # Power Mode "Normal"
    estimate = by_key("whatsminer_m20s").estimate_power_w(m20s["HS RT"] / 1e6, Mode.NORMAL)
    assert estimate == pytest.approx(m20s["Power"], rel=0.05)
    m31s = _first("whatsminer/m31s_summary.json", "SUMMARY", 0)
    assert m31s["Power Mode"] == "High"
    estimate = by_key("whatsminer_m31s").estimate_power_w(m31s["HS RT"] / 1e6, Mode.HIGH)
    assert estimate == pytest.approx(m31s["Power"], rel=0.05)
    # A1246 PS[]: element 4 is the PSU's output watts.
    rate_ths = float(_mm("avalon/a1246_stats.json", "GHSspd")) / 1e3
    measured_w = float(_mm("avalon/a1246_stats.json", "PS").split()[4])
    estimate = by_key("avalon_a1246").estimate_power_w(rate_ths, Mode.NORMAL)
    assert estimate == pytest.approx(measured_w, rel=0.05)


# --- physical sanity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=ids)
def test_figures_are_physically_sane(profile: MinerProfile) -> None:
    for mode, spec in profile.modes.items():
        if mode is Mode.SLEEP:
            assert spec.hashrate_ths == 0 and 0 < spec.power_w < 100
        else:
            assert spec.efficiency_j_per_th is not None and 10 <= spec.efficiency_j_per_th <= 120, mode
    ordered = [profile.modes[m] for m in (Mode.LOW, Mode.NORMAL, Mode.HIGH) if m in profile.modes]
    assert [s.power_w for s in ordered] == sorted(s.power_w for s in ordered)
    assert len({s.power_w for s in ordered}) == len(ordered)
    assert [s.hashrate_ths for s in ordered] == sorted(s.hashrate_ths for s in ordered)
    for revision, chips in profile.chips_per_board_by_revision.items():
        assert profile.chips_expected(f"{profile.model}_{revision}") == chips


@pytest.mark.parametrize("profile", PROFILES, ids=ids)
def test_control_data_is_consistent(profile: MinerProfile) -> None:
    assert profile.sleep_method in SLEEP_METHODS[profile.make]
    if profile.make != "Antminer":
        assert profile.firmware == ("stock",)
    if profile.power_target is not None:
        assert set(profile.power_target.firmware) <= set(profile.firmware)
        assert profile.power_target.min_w < profile.modes[Mode.NORMAL].power_w <= profile.power_target.max_w
    if profile.model == "Q":  # work levels but no watt target: there is nothing to command
        assert profile.power_target is None
    assert profile.default_credential_names
    assert all(re.fullmatch(r"[a-z]+_[a-z_]+", name) for name in profile.default_credential_names)


@pytest.mark.parametrize("profile", PROFILES, ids=ids)
def test_each_file_names_its_source_in_the_header(profile: MinerProfile) -> None:
    text = (PROFILES_DIR / f"{profile.key}.toml").read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert text.startswith(f"# {profile.make} {profile.model} (")
    assert MAKER[profile.make] in header and MAKER[profile.make] in profile.source
    assert "estimate" in header  # which figures are not the maker's is said, not left to guess


def test_revision_tables_pick_the_reported_board() -> None:
    m30s_plus = by_key("whatsminer_m30s_plus")
    assert m30s_plus.chips_expected("M30S+_VE40") == 156
    assert m30s_plus.chips_expected("M30S+_VH70") == 70
    assert m30s_plus.chips_expected("M30S+_VZ99") == m30s_plus.chips_per_board  # unknown: the fallback
    assert m30s_plus.chips_expected(None) == m30s_plus.chips_per_board
    assert by_key("antminer_s19_pro").chips_expected("Antminer S19 Pro") == 114


# --- estimate_power_w -------------------------------------------------------------------------------


def test_estimate_power_sleep_none_and_scaling() -> None:
    s19_pro = by_key("antminer_s19_pro")
    assert s19_pro.estimate_power_w(None, Mode.SLEEP) == s19_pro.sleep_w
    assert s19_pro.estimate_power_w(95.0, Mode.SLEEP) == s19_pro.sleep_w
    assert s19_pro.estimate_power_w(None, Mode.NORMAL) is None
    assert s19_pro.estimate_power_w(None, None) is None
    assert s19_pro.estimate_power_w(110.0, Mode.NORMAL) == pytest.approx(3250)
    assert s19_pro.estimate_power_w(110.0, None) == pytest.approx(3250)
    # A dead board: two thirds of the rate, two thirds of the watts (what the wall meter shows).
    assert s19_pro.estimate_power_w(110.0 * 2 / 3, Mode.NORMAL) == pytest.approx(3250 * 2 / 3)
    assert s19_pro.estimate_power_w(0.0, Mode.NORMAL) == s19_pro.sleep_w  # never below the controller
    # A mode the model lacks falls back to normal J/TH; a mode it has uses its own.
    s21 = by_key("antminer_s21")
    assert s21.estimate_power_w(150.0, Mode.HIGH) == s21.estimate_power_w(150.0, Mode.NORMAL)
    m31s = by_key("whatsminer_m31s")
    assert m31s.estimate_power_w(70.0, Mode.HIGH) == pytest.approx(70.0 * 3553 / 76.7)
    assert m31s.estimate_power_w(70.0, Mode.NORMAL) == pytest.approx(3220)


@given(
    index=st.integers(min_value=0, max_value=len(PROFILES) - 1),
    fraction=st.floats(min_value=0.0, max_value=1.5),
    more=st.floats(min_value=0.0, max_value=0.5),
    mode=st.sampled_from([None, Mode.NORMAL, Mode.LOW, Mode.HIGH]),
)
def test_estimate_grows_with_hashrate_and_never_drops_below_sleep(
    index: int, fraction: float, more: float, mode: Mode | None
) -> None:
    profile = PROFILES[index]
    low = fraction * profile.nominal_ths
    high = (fraction + more) * profile.nominal_ths
    low_w, high_w = profile.estimate_power_w(low, mode), profile.estimate_power_w(high, mode)
    assert low_w is not None and high_w is not None
    assert profile.sleep_w <= low_w <= high_w


# --- bad files ------------------------------------------------------------------------------------------

GOOD = """\
# Test profile.
make = "Antminer"
model = "Test 1"
firmware = ["stock", "braiins"]
hashboards = 3
chips_per_board = 76
fans = 4
sleep_method = "antminer_miner_mode"
source = "Bitmain product page (test)"

[modes.normal]
hashrate_ths = 95
power_w = 3250

[modes.sleep]
hashrate_ths = 0
power_w = 15

[power_target]
min_w = 1500
max_w = 3600
firmware = ["braiins"]
"""


def _edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


BAD_FILES = [
    ("invalid TOML", _edit('model = "Test 1"', 'model = "Test 1'), ["not valid TOML", "line 3"]),
    ("missing modes.sleep", _edit("[modes.sleep]\nhashrate_ths = 0\npower_w = 15\n", ""), ["modes", "sleep"]),
    ("negative power", _edit("power_w = 3250", "power_w = -3250"), ["modes.normal.power_w"]),
    ("zero sleep power", _edit("power_w = 15", "power_w = 0"), ["modes.sleep.power_w"]),
    ("unknown key", _edit("fans = 4", "fans = 4\ncolour = 'red'"), ["colour", "Extra inputs"]),
    ("wrong type", _edit("hashboards = 3", 'hashboards = "three"'), ["hashboards"]),
    ("sleep hashrate", _edit("hashrate_ths = 0", "hashrate_ths = 1.5"), ["modes", "sleep", "hashrate_ths"]),
    ("min_w >= max_w", _edit("min_w = 1500", "min_w = 3600"), ["power_target", "min_w"]),
    (
        "unknown mode",
        _edit("[modes.sleep]", "[modes.turbo]\nhashrate_ths = 1\npower_w = 1\n\n[modes.sleep]"),
        ["modes.turbo"],
    ),
    (
        "unknown firmware",
        _edit('firmware = ["stock", "braiins"]', 'firmware = ["stock", "hiveon"]'),
        ["firmware"],
    ),
    ("unknown sleep method", _edit('"antminer_miner_mode"', '"unplug"'), ["sleep_method"]),
    (
        "bad revision",
        GOOD + "\n[chips_per_board_by_revision]\nV1O = 105\n",
        ["chips_per_board_by_revision", "V1O"],
    ),
    (
        "revision chips",
        GOOD + "\n[chips_per_board_by_revision]\nV10 = 0\n",
        ["chips_per_board_by_revision", "V10"],
    ),
]


@pytest.mark.parametrize(("label", "text", "fragments"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_fails_with_its_path_and_field(
    tmp_path: Path, label: str, text: str, fragments: list[str]
) -> None:
    (tmp_path / "antminer_good.toml").write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "antminer_test_1.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    message = str(caught.value)
    assert str(bad) in message, label
    for fragment in fragments:
        assert fragment in message, (label, fragment, message)


def test_the_good_fixture_loads_and_unreadable_inputs_fail(tmp_path: Path) -> None:
    (tmp_path / "antminer_test_1.toml").write_text(GOOD, encoding="utf-8")
    catalog = load_profiles(tmp_path)
    assert isinstance(catalog, ProfileCatalog) and catalog.get("antminer_test_1").nominal_ths == 95
    with pytest.raises(KeyError, match="no firmware profile named"):
        catalog.get("antminer_s99")
    binary = tmp_path / "antminer_binary.toml"
    binary.write_bytes(b'make = "\xff\xfe"\n')
    with pytest.raises(ProfileError, match=re.escape(str(binary))):
        load_profiles(tmp_path)
    missing = tmp_path / "nowhere"
    with pytest.raises(ProfileError, match="directory not found"):
        load_profiles(missing)
