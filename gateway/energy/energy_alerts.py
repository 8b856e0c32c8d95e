"""The glue between energy figures and the alert lifecycle: contract statuses and price findings become
`Finding`s with stable targets and rule ids, and the lifecycle's policies for those rules live here.

Targets. The lifecycle keys everything by `(miner_id, rule_id)` and never looks the miner up: any stable
string works as the target. Contracts use `contract:<contract_id>`, price alerts the site target
(`site:<site_id>`). Miner ids are MACs or addresses (hex digits, ':' and '.'), and "contract" and "site"
are not hex, so the spaces cannot collide.

Rules (timing in `ENERGY_POLICIES`):

    contract_energy_warn  P2  projected month-end (actual before a projection exists) >= warn_pct
    contract_energy_crit  P1  actual >= crit_pct
    contract_demand_warn  P2  month's peak demand >= warn_pct of the limit
    contract_demand_crit  P1  month's peak demand >= crit_pct of the limit
    tou_peak_soon         P3  a TOU peak period starts within lead_s; resolves when it starts
    price_high            P2  real-time price high (with hysteresis)

Escalation follows the health catalog's warn/crit pairs (overheat_warn/overheat_crit): a warn rule fires
only while its crit rule does not, so at 95 % the P1 alert opens and the P2 alert resolves after its clear
window: one live alert per contract and measure, at the severity that applies. (The lifecycle fixes an
alert's severity when it opens; raising the severity of the open alert in place would need a change in
`gateway.alerts.tracks`.) A new month starts near 0 % and with no projection, so every contract alert
clears and resolves after its clear window in the new month.

How to call it: once per poll cycle, *in the same `AlertLifecycle.apply` call* as the health findings
(concatenate the two lists). `apply` treats a tracked pair with no finding as unknown, which pauses its
clear-window and debounce clocks: two `apply` calls per cycle would pause each other's tracks every cycle,
and no alert on either side could ever resolve. `energy_findings` always returns a finding for every
configured pair, and a CLEAR for energy pairs still tracked whose contract is no longer configured.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from zoneinfo import ZoneInfo

from gateway.alerts.model import AlertPolicy, Policy
from gateway.energy.contracts import (
    DAY_S,
    Contract,
    ContractStatus,
    Level,
    MonthToDate,
    evaluate_contract,
    month_containing,
)
from gateway.energy.price_alerts import (
    PEAK_RULE,
    PEAK_SEVERITY,
    PRICE_RULE,
    PRICE_SEVERITY,
    PeakWarningSettings,
    PriceThresholdSettings,
    peak_warning,
    price_high,
)
from gateway.energy.tariffs import Tariff
from gateway.energy.units import display, kwh
from gateway.rules.findings import Finding, FindingState, Severity

__all__ = [
    "ENERGY_POLICIES",
    "EnergyAlertSettings",
    "contract_findings",
    "energy_findings",
    "is_energy_rule",
    "policy_lookup",
]

ENERGY_WARN = "contract_energy_warn"
ENERGY_CRIT = "contract_energy_crit"
DEMAND_WARN = "contract_demand_warn"
DEMAND_CRIT = "contract_demand_crit"
_HOUR = 3600

# Contract figures move slowly and only one way within a month (energy grows; the peak never falls), so
# two findings open, an hour of clear resolves (a projection dipping under the line for a while is not
# news) and a six-hour cooldown keeps a projection hovering at the threshold to one alert. The peak
# warning is an event per peak: opens at once, resolves at the start, no cooldown (tomorrow's peak is a
# new alert). The price alert's anti-flap is the hysteresis band, so the lifecycle adds none, but a price
# high again within an hour reopens the same alert rather than paging anew.
ENERGY_POLICIES: Mapping[str, Policy] = MappingProxyType(
    {
        ENERGY_WARN: Policy(
            severity=Severity.P2, debounce_samples=2, clear_window_s=_HOUR, cooldown_s=6 * _HOUR
        ),
        ENERGY_CRIT: Policy(
            severity=Severity.P1, debounce_samples=2, clear_window_s=_HOUR, cooldown_s=6 * _HOUR
        ),
        DEMAND_WARN: Policy(
            severity=Severity.P2, debounce_samples=2, clear_window_s=_HOUR, cooldown_s=6 * _HOUR
        ),
        DEMAND_CRIT: Policy(
            severity=Severity.P1, debounce_samples=2, clear_window_s=_HOUR, cooldown_s=6 * _HOUR
        ),
        PEAK_RULE: Policy(severity=PEAK_SEVERITY, debounce_samples=1, clear_window_s=0, cooldown_s=0),
        PRICE_RULE: Policy(severity=PRICE_SEVERITY, debounce_samples=1, clear_window_s=0, cooldown_s=_HOUR),
    }
)
CONTRACT_RULES = (ENERGY_WARN, ENERGY_CRIT, DEMAND_WARN, DEMAND_CRIT)
# (target, rule_id) -> policy: the shape `AlertLifecycle` accepts as its policy lookup.
PolicyLookupFn = Callable[[str, str], AlertPolicy]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyAlertSettings:
    """`peak` / `price` None switch that alert off; `site_target` is the price alerts' target id."""

    site_target: str = "site"
    peak: PeakWarningSettings | None = field(default_factory=PeakWarningSettings)
    price: PriceThresholdSettings | None = None
    min_run_s: int = DAY_S  # no month-end projection before this much of the month has passed

    def __post_init__(self) -> None:
        name = self.site_target.removeprefix("site:")
        if self.site_target != "site" and (name == self.site_target or not name or ":" in name):
            raise ValueError(f"site_target {self.site_target!r}: 'site' or 'site:<site id>'")


def is_energy_rule(rule_id: str) -> bool:
    return rule_id in ENERGY_POLICIES


def policy_lookup(fallback: PolicyLookupFn) -> PolicyLookupFn:
    """The lifecycle's policy lookup with the energy rules in front of `fallback` (the runtime's rule
    table), so energy alerts get their own timing instead of the default with a warning."""

    def lookup(target: str, rule_id: str) -> AlertPolicy:
        policy = ENERGY_POLICIES.get(rule_id)
        return policy if policy is not None else fallback(target, rule_id)

    return lookup


def _pct(value: Fraction) -> str:
    return f"{display(value, 1)} %"


def _kwh(joules: int) -> str:
    return f"{display(kwh(joules), 0):,} kWh"


def contract_findings(status: ContractStatus, contract: Contract) -> list[Finding]:
    """Four findings per contract (energy and demand, warn and crit); CLEAR for a term it lacks."""

    def finding(rule: str, state: FindingState, value: float | None, threshold: int, detail: str) -> Finding:
        return Finding(
            miner_id=status.target, rule_id=rule, severity=ENERGY_POLICIES[rule].severity, state=state,
            ts=status.now, value=value, threshold=float(threshold), detail=detail,
        )  # fmt: skip

    def state(on: bool) -> FindingState:
        return FindingState.FIRING if on else FindingState.CLEAR

    out: list[Finding] = []
    warn, crit = contract.warn_pct, contract.crit_pct
    if status.contracted_j is not None and status.energy_pct is not None:
        used = f"contract {contract.id}: {_kwh(status.energy_j)} used ({_pct(status.energy_pct)})"
        if status.projected_j is not None and status.projected_pct is not None:
            used += f", projected {_kwh(status.projected_j)} ({_pct(status.projected_pct)})"
        used += f" of {_kwh(status.contracted_j)}"
        basis = status.projected_pct if status.projected_pct is not None else status.energy_pct
        out.append(finding(ENERGY_WARN, state(status.energy_level is Level.WARN), float(basis), warn, used))
        out.append(
            finding(
                ENERGY_CRIT, state(status.energy_level is Level.CRIT), float(status.energy_pct), crit, used
            )
        )
    else:
        out += [finding(r, FindingState.CLEAR, None, t, "no energy term") for r, t in
                ((ENERGY_WARN, warn), (ENERGY_CRIT, crit))]  # fmt: skip
    if status.demand_limit_kw is not None and status.demand_pct is not None:
        peak = (
            f"contract {contract.id}: peak demand {display(status.peak_kw, 1)} kW "
            f"({_pct(status.demand_pct)}) of the {status.demand_limit_kw} kW limit"
        )
        pct = float(status.demand_pct)
        out.append(finding(DEMAND_WARN, state(status.demand_level is Level.WARN), pct, warn, peak))
        out.append(finding(DEMAND_CRIT, state(status.demand_level is Level.CRIT), pct, crit, peak))
    else:
        out += [finding(r, FindingState.CLEAR, None, t, "no demand term") for r, t in
                ((DEMAND_WARN, warn), (DEMAND_CRIT, crit))]  # fmt: skip
    return out


def energy_findings(
    *,
    contracts: Sequence[tuple[Contract, MonthToDate]],
    tariff: Tariff | None,
    tz: str | ZoneInfo,
    now: int,
    settings: EnergyAlertSettings,
    tracked: Collection[tuple[str, str]] = (),
) -> list[Finding]:
    """This cycle's energy findings: every contract's four, the peak warning and the price alert (if set
    and a tariff is in force), and a CLEAR for each tracked energy pair nobody reported (`tracked`: the
    lifecycle's `pairs_needing_clear()`), so removing a contract resolves its alerts."""
    month = month_containing(now, tz)
    out: list[Finding] = []
    for contract, so_far in contracts:
        status = evaluate_contract(contract, so_far, now=now, month=month, min_run_s=settings.min_run_s)
        out += contract_findings(status, contract)
    if tariff is not None and settings.peak is not None:
        out.append(peak_warning(tariff.energy, tz, now, settings.peak, target=settings.site_target))
    if tariff is not None and settings.price is not None:
        out.append(price_high(tariff.energy, now, settings.price, target=settings.site_target))
    reported = {(f.miner_id, f.rule_id) for f in out}
    for target, rule in sorted(pair for pair in tracked if is_energy_rule(pair[1])):
        if (target, rule) not in reported:
            out.append(
                Finding(
                    miner_id=target,
                    rule_id=rule,
                    severity=ENERGY_POLICIES[rule].severity,
                    state=FindingState.CLEAR,
                    ts=now,
                    detail="no longer configured",
                )
            )
    return out
