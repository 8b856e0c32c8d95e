"""The catalog as data, and the overrides a site may apply to it (and the ones it may not)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.alerts.model import AlertPolicy
from gateway.config import ConfigError, load_settings
from gateway.rules.catalog import (
    CATALOG,
    RULE_IDS,
    Op,
    RuleConfigError,
    RuleTable,
    apply_overrides,
    normalize_pool_url,
    pool_allowed,
)
from gateway.rules.findings import Severity
from gateway.rules.settings import RulesSection, rules_from_config

# id: (severity, op, threshold) as issue 5 specifies them
SPEC = {
    "overheat_crit": (Severity.P0, Op.GE, 85.0),
    "offline": (Severity.P0, Op.GE, 1.0),
    "hashrate_zero": (Severity.P1, Op.LE, 0.01),
    "boards_dead": (Severity.P1, Op.GE, 1.0),
    "fan_zero": (Severity.P1, Op.GE, 1.0),
    "overheat_warn": (Severity.P1, Op.RANGE, 75.0),
    "hashrate_degradation": (Severity.P2, Op.LT, -2.0),
    "efficiency_degradation": (Severity.P2, Op.GT, 2.0),
    "temp_anomaly": (Severity.P2, Op.GT, 2.5),
    "fleet_outlier": (Severity.P3, Op.ABS_GT, 3.0),
    "boards_degrading": (Severity.P3, Op.LT, -0.1),
    "power_spike": (Severity.P2, Op.GT, 1.15),
    "power_3sigma": (Severity.P2, Op.ABS_GT, 3.0),
    "shares_stale": (Severity.P1, Op.GT, 600.0),
    "pool_not_allowed": (Severity.P1, Op.GE, 1.0),
    "asleep_unplanned": (Severity.P2, Op.GE, 1.0),
    "hashrate_drift": (Severity.P2, Op.LT, -10.0),
}


def test_the_catalog_is_the_issue_table():
    assert set(RULE_IDS) == set(SPEC)
    assert len(RULE_IDS) == len(set(RULE_IDS))
    for rule in CATALOG:
        assert (rule.severity, rule.op, rule.threshold) == SPEC[rule.id], rule.id


@pytest.mark.parametrize("rule", CATALOG, ids=lambda r: r.id)
def test_every_rule_is_complete_data(rule):
    assert rule.description.endswith(".") and len(rule.description) < 110
    assert rule.debounce_samples >= 1 and rule.debounce_s >= 0
    assert rule.clear_window_s > 0 and rule.cooldown_s >= rule.clear_window_s
    low, high = rule.bounds
    assert low <= rule.threshold <= high
    rule.detail.format(value=1.0, threshold=2.0, aux=0.0, aux_name="x")  # every template renders
    policy: AlertPolicy = rule  # the lifecycle reads the rule itself as its policy
    assert policy.severity is rule.severity


def test_flap_resistant_defaults_for_overheat():
    table = RuleTable()
    crit, warn = table.rule("overheat_crit"), table.rule("overheat_warn")
    assert (crit.debounce_samples, crit.clear_window_s, crit.cooldown_s) == (2, 180, 600)
    assert warn.upper == crit.threshold == 85.0


def test_only_offline_speaks_for_an_offline_miner_and_needs_no_fresh_data():
    assert [r.id for r in CATALOG if r.judged_when_offline] == ["offline"]
    assert {r.id for r in CATALOG if not r.needs_fresh} == {"offline", "pool_not_allowed"}
    assert {r.id for r in CATALOG if r.intended_sleep_suspends} == {
        "offline",
        "hashrate_zero",
        "asleep_unplanned",
    }


# --- overrides --------------------------------------------------------------------------------------------


def test_site_then_model_overrides_resolve_by_threshold_or_its_name():
    table = apply_overrides(
        CATALOG,
        {"overheat_crit": {"temp_c": 88}, "shares_stale": {"stale_after_s": 900, "debounce_samples": 2}},
        {"antminer_s9": {"overheat_warn": {"threshold": 70.0}, "overheat_crit": {"cooldown_s": 1200}}},
    )
    assert table.rule("overheat_crit").threshold == 88
    assert table.rule("overheat_warn").upper == 88  # the band ends where critical starts
    assert table.rule("shares_stale").threshold == 900 and table.rule("shares_stale").debounce_samples == 2
    s9_warn, s9_crit = table.rule("overheat_warn", "antminer_s9"), table.rule("overheat_crit", "antminer_s9")
    assert (s9_warn.threshold, s9_warn.upper) == (70, 88)
    assert (s9_crit.threshold, s9_crit.cooldown_s) == (88, 1200)  # site override inherited
    assert table.rule("overheat_warn", "antminer_s21").threshold == 75  # other models: the site's table
    assert [r.id for r in table.for_model("antminer_s9")] == list(RULE_IDS)


@pytest.mark.parametrize(
    ("site", "models", "message"),
    [
        ({"overheat_crtical": {"temp_c": 90}}, {}, r"rules\.overheat_crtical: unknown rule"),
        ({}, {"m": {"nope": {"temp_c": 90}}}, r"rules\.models\.m\.nope: unknown rule"),
        ({"overheat_crit": {"temp": 90}}, {}, r"rules\.overheat_crit\.temp: unknown setting .*temp_c"),
        ({"offline": {"threshold": 2}}, {}, r"rules\.offline\.threshold: unknown setting"),
        (
            {"overheat_crit": {"temp_c": "90"}},
            {},
            r"rules\.overheat_crit\.temp_c: expected a number, got '90'",
        ),
        ({"overheat_crit": {"temp_c": math.nan}}, {}, r"temp_c: expected a finite number"),
        ({"overheat_crit": {"temp_c": True}}, {}, r"temp_c: expected a number, got True"),
        ({"overheat_crit": {"temp_c": 300}}, {}, r"temp_c: 300 is outside the sane range \[40, 130\]"),
        ({"hashrate_degradation": {"z": 2}}, {}, r"hashrate_degradation\.z: 2 is outside the sane range"),
        ({"fan_zero": {"debounce_samples": -1}}, {}, r"fan_zero\.debounce_samples: expected a whole number"),
        (
            {"fan_zero": {"debounce_samples": 0}},
            {},
            r"debounce_samples: expected a whole number of samples >= 1",
        ),
        ({"fan_zero": {"debounce_samples": 2.5}}, {}, r"debounce_samples: expected a whole number"),
        ({"fan_zero": {"cooldown_s": -5}}, {}, r"fan_zero\.cooldown_s: expected seconds in \[0, 604800\]"),
        ({"fan_zero": {"enabled": 1}}, {}, r"fan_zero\.enabled: expected true or false"),
        (
            {"overheat_warn": {"temp_c": 90}},
            {},
            r"overheat_warn\.temp_c: 90 must be below overheat_crit's \(85\)",
        ),
        (
            {"overheat_crit": {"temp_c": 70}},
            {},
            r"overheat_warn\.temp_c: 75 must be below overheat_crit's \(70\)",
        ),
        (
            {},
            {"s9": {"overheat_warn": {"temp_c": 86}}},
            r"rules\.models\.s9\.overheat_warn\.temp_c: 86 must be",
        ),
        ({"overheat_crit": {"temp_c": 90, "threshold": 91}}, {}, r"given twice"),
        ({"fan_zero": 3}, {}, r"rules\.fan_zero: expected a table of settings, got int"),
    ],
)
def test_nonsense_overrides_are_refused_naming_the_key(site, models, message):
    with pytest.raises(RuleConfigError, match=message):
        apply_overrides(CATALOG, site, models)


def test_overrides_for_a_model_without_a_profile_are_refused_when_profiles_are_known():
    with pytest.raises(RuleConfigError, match=r"rules\.models\.antminer_s99: no firmware profile"):
        apply_overrides(CATALOG, {}, {"antminer_s99": {}}, known_models={"antminer_s9"})


def test_a_rule_can_be_disabled_per_model():
    table = apply_overrides(CATALOG, {}, {"immersion_s19": {"fan_zero": {"enabled": False}}})
    assert not table.rule("fan_zero", "immersion_s19").enabled
    assert table.rule("fan_zero").enabled


# --- the [rules] TOML shape ---------------------------------------------------------------------------------


def test_rules_section_parses_site_models_and_pools():
    section = RulesSection.model_validate(
        {
            "allowed_pools": ["stratum+tcp://Pool.Example.com:3333"],
            "overheat_crit": {"temp_c": 90},
            "models": {"antminer_s9": {"overheat_warn": {"temp_c": 70}}},
        }
    )
    table = section.table()
    assert table.rule("overheat_crit").threshold == 90
    assert table.rule("overheat_warn", "antminer_s9").threshold == 70
    assert table.allowed_pools == frozenset({"pool.example.com:3333"})
    assert rules_from_config(section.model_dump()).by_model.keys() == {"antminer_s9"}


def test_rules_from_config_refuses_a_bare_string_pool_list():
    with pytest.raises(RuleConfigError, match="allowed_pools"):
        rules_from_config({"allowed_pools": "pool.example.com"})


def test_site_toml_with_a_bad_rule_is_refused_at_load(tmp_path: Path):
    path = tmp_path / "site.toml"
    path.write_text("demo = true\n[rules.overheat_crit]\ntemp_c = 'hot'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules\.overheat_crit\.temp_c: expected a number, got 'hot'"):
        load_settings(path, environ={})
    path.write_text("demo = true\n[rules.overheat_critical]\ntemp_c = 90\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules\.overheat_critical: unknown rule"):
        load_settings(path, environ={})
    path.write_text("demo = true\n[rules.models.antminer_s9.overheat_warn]\ntemp_c = 70\n", encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.rules.table().rule("overheat_warn", "antminer_s9").threshold == 70


# --- pools --------------------------------------------------------------------------------------------------


def test_pool_urls_compare_by_host_and_port():
    assert normalize_pool_url(" stratum+ssl://worker@BTC.Pool.com:443/path ") == "btc.pool.com:443"
    allowed = frozenset({"btc.pool.com:3333", "backup.pool.com"})
    assert pool_allowed("stratum+tcp://btc.pool.com:3333", allowed)
    assert not pool_allowed("stratum+tcp://btc.pool.com:4444", allowed)
    assert pool_allowed("stratum+tcp://backup.pool.com:25", allowed)  # host listed without a port
    assert not pool_allowed("stratum+tcp://evil.example.net:3333", allowed)
