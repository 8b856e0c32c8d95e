"""The health rules as data: one frozen `Rule` per check, all in `CATALOG`, read by one generic engine.

A rule names a *signal* the engine computes for every miner (a temperature, a z-score, a count), a
comparison and a threshold. Everything a site may want to tune is a field here, not a branch in the
engine, so a site's `site.toml` can override a threshold or a debounce per site or per model and the
alert lifecycle reads the same object (`Rule` satisfies `gateway.alerts.model.AlertPolicy`).

Defaults are chosen for a 30 s poll and against flapping: hard safety rules open after 1-2 samples;
statistical rules wait several samples (a z < -2 happens by chance in ~2-3 % of readings, a run of
five about once a day in a 10,000-miner fleet) and clear only after minutes; cooldowns keep a marginal
miner from reopening every cycle.
`apply_overrides` resolves a site's and its models' overrides into a `RuleTable`, refusing anything
it cannot make sense of; `gateway.rules.settings` holds the `[rules]` TOML shape.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from gateway.rules.findings import Severity


class Signal(enum.StrEnum):
    """What the engine computes per miner each cycle (see engine.py for how each one is derived)."""

    TEMP_MAX_C = "temp_max_c"  # hottest active board: chip or PCB sensor
    OFFLINE = "offline"  # 1 when the poller calls the miner offline
    HASHRATE_FRAC = "hashrate_frac"  # real-time TH/s / expected TH/s
    BOARDS_DEAD = "boards_dead"  # active boards with ~no hashrate, plus boards missing vs the profile
    FANS_ZERO = "fans_zero"  # fans reading 0 rpm
    HASHRATE_Z = "hashrate_z"  # vs the miner's own EWMA, before this reading updates it
    EFFICIENCY_Z = "efficiency_z"  # W/TH vs own EWMA (measured power only)
    TEMP_Z = "temp_z"  # vs own EWMA
    FLEET_Z = "fleet_z"  # robust z (median/MAD) vs the same model in the same mode
    BOARD_RESIDUAL = "board_residual"  # worst board: share of hashrate / expected share - 1
    POWER_RATIO = "power_ratio"  # measured W / expected W for the mode (or the power limit)
    POWER_SIGMA = "power_sigma"  # (W - rolling mean) / rolling std, before this reading
    SHARE_AGE_S = "share_age_s"  # seconds since the accepted-share count last moved
    POOL_DISALLOWED = "pool_disallowed"  # 1 when a configured pool is not on the allow-list
    ASLEEP_UNPLANNED = "asleep_unplanned"  # 1 when sleeping/low and nobody asked for it
    HASHRATE_CUSUM = "hashrate_cusum"  # lower CUSUM of the hashrate residual, in sigmas (<= 0)


class Op(enum.StrEnum):
    GE = ">="
    GT = ">"
    LT = "<"
    LE = "<="
    ABS_GT = "|x|>"
    RANGE = "[lo,hi)"  # threshold <= x < upper


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One check. The flags tell the engine when the rule cannot or must not judge:

    - `needs_fresh`: suspended while the poller calls the miner `stale` (its reading is old);
    - `hashing_only`: judged only while the miner hashes (a sleeping miner's hashrate z-score would
      merely repeat `asleep_unplanned` or `hashrate_zero`), suspended otherwise;
    - `asleep_suspends`: suspended while the miner reports sleeping (boards and fans are off by design);
    - `intended_sleep_suspends`: suspended when the curtailment executor put the miner to sleep;
    - `judged_when_offline`: the only rules that still speak for an offline miner (all others suspend);
    - `needs_baseline`: reads what the baselines learned, so it is `unknown` during warm-up and
      suspended while the miner settles or when its reading is not new (it was already scored).

    `param` is the threshold's name in `site.toml` (an alias of `threshold`); empty when the rule has
    nothing to tune but its timing. `bounds` is the sane range an override must stay in.
    """

    id: str
    severity: Severity
    signal: Signal
    op: Op
    threshold: float
    param: str
    bounds: tuple[float, float]
    description: str
    detail: str  # str.format template: {value} {threshold} {aux}
    upper: float | None = None  # Op.RANGE only
    upper_from: str | None = None  # the rule whose threshold is this one's upper bound (warn -> crit)
    needs_fresh: bool = True
    needs_baseline: bool = False
    hashing_only: bool = False
    asleep_suspends: bool = False
    intended_sleep_suspends: bool = False
    judged_when_offline: bool = False
    debounce_samples: int = 2
    debounce_s: float = 0.0
    clear_window_s: float = 180.0
    cooldown_s: float = 600.0
    enabled: bool = True


# Keys a site may override besides the threshold (and the threshold's `param` alias).
TIMING_KEYS = ("debounce_samples", "debounce_s", "clear_window_s", "cooldown_s")
OVERRIDABLE_KEYS = ("threshold", *TIMING_KEYS, "enabled")

_Z = (-10.0, -0.5)

CATALOG: tuple[Rule, ...] = (
    # --- hard rules: facts about the reading, no baseline needed ------------------------------------
    Rule(
        id="overheat_crit", severity=Severity.P0, signal=Signal.TEMP_MAX_C, op=Op.GE, threshold=85.0,
        param="temp_c", bounds=(40.0, 130.0), debounce_samples=2, clear_window_s=180, cooldown_s=600,
        description="Hottest board at or above the critical temperature: throttle or stop it now.",
        detail="hottest board {value:.0f} C >= {threshold:.0f} C",
    ),
    Rule(
        id="offline", severity=Severity.P0, signal=Signal.OFFLINE, op=Op.GE, threshold=1.0,
        param="", bounds=(1.0, 1.0), needs_fresh=False, judged_when_offline=True,
        intended_sleep_suspends=True, debounce_samples=1, clear_window_s=120, cooldown_s=600,
        description="The poller could not read the miner several times in a row (it already debounced).",
        detail="unreachable: no reading for several poll cycles",
    ),
    Rule(
        id="hashrate_zero", severity=Severity.P1, signal=Signal.HASHRATE_FRAC, op=Op.LE, threshold=0.01,
        param="fraction_of_expected", bounds=(0.0, 0.5), asleep_suspends=True,
        intended_sleep_suspends=True, debounce_samples=2, clear_window_s=180, cooldown_s=600,
        description="Reachable and awake but not hashing (no pool, all boards down, stuck firmware).",
        detail="hashrate {value:.1%} of expected (<= {threshold:.0%})",
    ),
    Rule(
        id="boards_dead", severity=Severity.P1, signal=Signal.BOARDS_DEAD, op=Op.GE, threshold=1.0,
        param="boards", bounds=(1.0, 8.0), hashing_only=True, asleep_suspends=True, debounce_samples=3,
        clear_window_s=300, cooldown_s=900,
        description="A board is not hashing, or missing, while the others hash (all down: hashrate_zero).",
        detail="{value:.0f} board(s) dead or missing",
    ),
    Rule(
        id="fan_zero", severity=Severity.P1, signal=Signal.FANS_ZERO, op=Op.GE, threshold=1.0,
        param="fans", bounds=(1.0, 8.0), asleep_suspends=True, debounce_samples=2,
        clear_window_s=180, cooldown_s=600,
        description="A fan reads 0 rpm while the miner runs: it will overheat within minutes.",
        detail="{value:.0f} fan(s) at 0 rpm",
    ),
    Rule(
        id="overheat_warn", severity=Severity.P1, signal=Signal.TEMP_MAX_C, op=Op.RANGE, threshold=75.0,
        upper=85.0, upper_from="overheat_crit", param="temp_c", bounds=(30.0, 130.0),
        debounce_samples=3, clear_window_s=300, cooldown_s=900,
        description="Hottest board in the warning band below critical: check airflow and inlet.",
        detail="hottest board {value:.0f} C in [{threshold:.0f}, critical) C",
    ),
    # --- soft rules: against the miner's own baseline or its model's fleet ----------------------------
    Rule(
        id="hashrate_degradation", severity=Severity.P2, signal=Signal.HASHRATE_Z, op=Op.LT,
        threshold=-2.0, param="z", bounds=_Z, needs_baseline=True, hashing_only=True,
        debounce_samples=5, debounce_s=120, clear_window_s=600, cooldown_s=1800,
        description="Hashrate well below the miner's own recent level in its current mode.",
        detail="hashrate z = {value:.1f} (< {threshold:g}) against its own baseline",
    ),
    Rule(
        id="efficiency_degradation", severity=Severity.P2, signal=Signal.EFFICIENCY_Z, op=Op.GT,
        threshold=2.0, param="z", bounds=(0.5, 10.0), needs_baseline=True, hashing_only=True,
        debounce_samples=5, debounce_s=120, clear_window_s=600, cooldown_s=1800,
        description="W/TH well above the miner's own level: same power, less work (measured power only).",
        detail="W/TH z = {value:.1f} (> {threshold:g}) against its own baseline",
    ),
    Rule(
        id="temp_anomaly", severity=Severity.P2, signal=Signal.TEMP_Z, op=Op.GT, threshold=2.5,
        param="z", bounds=(0.5, 10.0), needs_baseline=True, hashing_only=True, debounce_samples=3,
        clear_window_s=600, cooldown_s=1800,
        description="Temperature jumped above the miner's own normal, even if still below the warning band.",
        detail="temperature z = {value:.1f} (> {threshold:g}) against its own baseline",
    ),
    Rule(
        id="fleet_outlier", severity=Severity.P3, signal=Signal.FLEET_Z, op=Op.ABS_GT, threshold=3.0,
        param="robust_z", bounds=(1.0, 20.0), needs_baseline=True, hashing_only=True,
        debounce_samples=10, debounce_s=300, clear_window_s=1800, cooldown_s=3600,
        description="Hashrate or W/TH far from the median of the same model in the same mode (MAD z).",
        detail="robust z = {value:.1f} against its model's fleet ({aux_name})",
    ),
    Rule(
        id="boards_degrading", severity=Severity.P3, signal=Signal.BOARD_RESIDUAL, op=Op.LT,
        threshold=-0.1, param="residual", bounds=(-0.9, -0.01), hashing_only=True,
        debounce_samples=10, debounce_s=300, clear_window_s=1800, cooldown_s=3600,
        description="One board's share of the miner's hashrate is well below its expected share.",
        detail="board slot {aux:.0f} at {value:+.0%} of its expected share",
    ),
    # --- power ----------------------------------------------------------------------------------------
    Rule(
        id="power_spike", severity=Severity.P2, signal=Signal.POWER_RATIO, op=Op.GT, threshold=1.15,
        param="factor", bounds=(1.01, 3.0), debounce_samples=3, clear_window_s=300, cooldown_s=1800,
        description="Measured power above the mode's nominal (or the set power limit) for several polls.",
        detail="power {value:.2f} x expected (> {threshold:.2f} x)",
    ),
    Rule(
        id="power_3sigma", severity=Severity.P2, signal=Signal.POWER_SIGMA, op=Op.ABS_GT, threshold=3.0,
        param="sigma", bounds=(1.0, 10.0), needs_baseline=True, hashing_only=True, debounce_samples=3,
        clear_window_s=300, cooldown_s=1800,
        description="Measured power outside its rolling mean +- k sigma: a PSU or board problem.",
        detail="power {value:+.1f} sigma from its rolling mean (|x| > {threshold:g})",
    ),
    # --- pool, shares, sleep --------------------------------------------------------------------------
    Rule(
        id="shares_stale", severity=Severity.P1, signal=Signal.SHARE_AGE_S, op=Op.GT, threshold=600.0,
        param="stale_after_s", bounds=(60.0, 86_400.0), needs_baseline=True, hashing_only=True,
        debounce_samples=1,
        clear_window_s=120, cooldown_s=600,
        description="Hashing, but the pool has accepted no new share for too long (the classic silent loss).",
        detail="no accepted share for {value:.0f} s (> {threshold:.0f} s)",
    ),
    Rule(
        id="pool_not_allowed", severity=Severity.P1, signal=Signal.POOL_DISALLOWED, op=Op.GE,
        threshold=1.0, param="", bounds=(1.0, 1.0), needs_fresh=False, debounce_samples=1,
        clear_window_s=300, cooldown_s=600,
        description="A configured pool is not on the site's allow-list (hijacked or mistyped config).",
        detail="pool {aux_name} is not on the site's allow-list",
    ),
    Rule(
        id="asleep_unplanned", severity=Severity.P2, signal=Signal.ASLEEP_UNPLANNED, op=Op.GE,
        threshold=1.0, param="", bounds=(1.0, 1.0), intended_sleep_suspends=True, debounce_samples=2,
        clear_window_s=180, cooldown_s=900,
        description="Sleeping (or in low power against the executor's plan) without curtailment asking.",
        detail="{aux_name} but curtailment did not ask for it",
    ),
    Rule(
        id="hashrate_drift", severity=Severity.P2, signal=Signal.HASHRATE_CUSUM, op=Op.LT,
        threshold=-10.0, param="cusum", bounds=(-100.0, -1.0), needs_baseline=True, hashing_only=True,
        debounce_samples=1, clear_window_s=600, cooldown_s=3600,
        description="Slow downward drift in hashrate (CUSUM): the trend an EWMA quietly follows.",
        detail="hashrate CUSUM {value:.1f} sigma (< {threshold:g}): a sustained slide",
    ),
)  # fmt: skip

RULE_IDS: tuple[str, ...] = tuple(rule.id for rule in CATALOG)


def rule_by_id(rules: tuple[Rule, ...], rule_id: str) -> Rule:
    for rule in rules:
        if rule.id == rule_id:
            return rule
    raise KeyError(rule_id)


class RuleConfigError(ValueError):
    """An override cannot be applied. The message names the TOML key at fault, e.g.
    `rules.models.antminer_s9.overheat_warn.threshold`, and what would be accepted."""


@dataclass(frozen=True, slots=True)
class RuleTable:
    """The rules resolved for one site: the site-level table, and one table per model that has its own
    overrides (same rule order, so the engine can line them up by index). `allowed_pools` holds the
    site's pool allow-list as normalised `host[:port]` (None: the site keeps no allow-list)."""

    rules: tuple[Rule, ...] = CATALOG
    by_model: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    allowed_pools: frozenset[str] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)

    def for_model(self, model_key: str | None) -> tuple[Rule, ...]:
        return self.by_model.get(model_key, self.rules) if model_key is not None else self.rules

    def rule(self, rule_id: str, model_key: str | None = None) -> Rule:
        """The effective rule (thresholds and timing) for a miner of `model_key`; the lifecycle's policy."""
        return rule_by_id(self.for_model(model_key), rule_id)


def apply_overrides(
    rules: Iterable[Rule],
    site_overrides: Mapping[str, Mapping[str, object]],
    model_overrides: Mapping[str, Mapping[str, Mapping[str, object]]],
    *,
    known_models: Collection[str] | None = None,
    allowed_pools: Iterable[str] | None = None,
) -> RuleTable:
    """Resolve `[rules.<rule_id>]` (site) then `[rules.models.<profile_key>.<rule_id>]` (on top of the
    site's) into a `RuleTable`. Anything unknown or nonsensical raises `RuleConfigError`: a typo in a
    threshold must stop the gateway at start, not leave a default silently in force.

    `known_models`, when given, makes an override for a model with no firmware profile an error too."""
    base = tuple(rules)
    site_rules = _resolve(base, site_overrides, "rules")
    by_model: dict[str, tuple[Rule, ...]] = {}
    for model_key, table in model_overrides.items():
        where = f"rules.models.{model_key}"
        if known_models is not None and model_key not in known_models:
            raise RuleConfigError(f"{where}: no firmware profile named {model_key!r}")
        if not isinstance(table, Mapping):
            raise RuleConfigError(f"{where}: expected a table of rules, got {type(table).__name__}")
        by_model[model_key] = _resolve(site_rules, table, where)
    pools = None if allowed_pools is None else frozenset(normalize_pool_url(url) for url in allowed_pools)
    return RuleTable(site_rules, by_model, pools)


def normalize_pool_url(url: str) -> str:
    """`stratum+tcp://User@Pool.Example.com:3333/x` -> `pool.example.com:3333`: the scheme (tcp/ssl/v2),
    credentials and path do not decide where the hashrate goes; host and port do."""
    value = url.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1]
    return value.split("/", 1)[0].rsplit("@", 1)[-1]


def pool_allowed(url: str, allowed: frozenset[str]) -> bool:
    """On the list as `host:port`, or its host is listed without a port (any port then)."""
    hostport = normalize_pool_url(url)
    return hostport in allowed or hostport.rsplit(":", 1)[0] in allowed


def _resolve(
    base: tuple[Rule, ...], overrides: Mapping[str, Mapping[str, object]], where: str
) -> tuple[Rule, ...]:
    index = {rule.id: i for i, rule in enumerate(base)}
    resolved = list(base)
    for rule_id, changes in overrides.items():
        if rule_id not in index:
            known = ", ".join(sorted(index))
            raise RuleConfigError(f"{where}.{rule_id}: unknown rule (known rules: {known})")
        if not isinstance(changes, Mapping):
            raise RuleConfigError(
                f"{where}.{rule_id}: expected a table of settings, got {type(changes).__name__}"
            )
        resolved[index[rule_id]] = _override(resolved[index[rule_id]], changes, f"{where}.{rule_id}")
    return tuple(_link(resolved, where))


def _override(rule: Rule, changes: Mapping[str, object], where: str) -> Rule:
    updates: dict[str, object] = {}
    accepted = ((rule.param, "threshold") if rule.param else ()) + OVERRIDABLE_KEYS[1:]
    for key, value in changes.items():
        name = "threshold" if rule.param and key == rule.param else key
        if name not in OVERRIDABLE_KEYS or (name == "threshold" and not rule.param):
            raise RuleConfigError(
                f"{where}.{key}: unknown setting for {rule.id} (it takes: {', '.join(accepted)})"
            )
        if name in updates:
            raise RuleConfigError(f"{where}.{key}: given twice (as 'threshold' and as '{rule.param}')")
        updates[name] = _checked(rule, name, value, f"{where}.{key}")
    return replace(rule, **updates)  # type: ignore[arg-type]  # each value checked for its field


def _checked(rule: Rule, name: str, value: object, where: str) -> object:
    if name == "enabled":
        if not isinstance(value, bool):
            raise RuleConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleConfigError(f"{where}: expected a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise RuleConfigError(f"{where}: expected a finite number, got {value!r}")
    if name == "debounce_samples":
        if not number.is_integer() or number < 1:
            raise RuleConfigError(f"{where}: expected a whole number of samples >= 1, got {value!r}")
        return int(number)
    if name in TIMING_KEYS:
        if not 0 <= number <= 7 * 86_400:
            raise RuleConfigError(f"{where}: expected seconds in [0, 604800], got {value!r}")
        return number
    low, high = rule.bounds
    if not low <= number <= high:
        raise RuleConfigError(
            f"{where}: {value!r} is outside the sane range [{low:g}, {high:g}] for {rule.id}"
        )
    return number


def _link(rules: list[Rule], where: str) -> list[Rule]:
    """A warning band ends where its critical rule starts, so the two can never overlap or leave a gap;
    a warning threshold at or above the critical one is refused (the warning would never be seen)."""
    by_id = {rule.id: rule for rule in rules}
    linked = []
    for rule in rules:
        if rule.upper_from is not None:
            crit = by_id[rule.upper_from]
            if rule.threshold >= crit.threshold:
                raise RuleConfigError(
                    f"{where}.{rule.id}.{rule.param or 'threshold'}: {rule.threshold:g} must be below "
                    f"{rule.upper_from}'s ({crit.threshold:g}): a warning has to come before the critical one"
                )
            rule = replace(rule, upper=crit.threshold)
        linked.append(rule)
    return linked
