"""Site configuration: one `Settings` object, from a TOML file with environment overrides.

    HASHINSIGHT_POLLING__INTERVAL_S=10 hashinsight run --config site.toml

overrides `[polling] interval_s` (section and key joined by a double underscore). Every bad value is
reported with its dotted key (`polling.interval_s: ...`), and unknown keys are errors, not silently
ignored: a typo in `site.toml` must not quietly leave a default in force on a live site. Settings
that would be unsafe on a real site (factory miner passwords) are refused unless `demo = true`.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.alerts.notify_config import NotificationSettings, inline_secrets
from gateway.devices.model import FirmwareFamily
from gateway.rules.settings import RulesSection

ENV_PREFIX = "HASHINSIGHT_"
ENV_CONFIG = "HASHINSIGHT_CONFIG"
# Factory passwords the simulator and out-of-the-box miners use; fine for a demo, not for a site.
FACTORY_PASSWORDS = {"root", "admin", ""}


class ConfigError(ValueError):
    """The configuration cannot be used. The message names the file and the key at fault."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Section):
    id: str = Field(default="site-1", min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = "HashInsight site"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'America/Chicago')") from None
        return value


class PollingSettings(_Section):
    interval_s: float = Field(default=30.0, ge=1, le=3600)
    concurrency: int = Field(default=512, ge=1, le=20_000)
    deadline_s: float = Field(default=5.0, gt=0, le=120)  # one miner's whole read, all requests
    spread: float = Field(default=0.5, ge=0, le=0.9)  # fraction of the interval requests are spread over
    offline_after_failures: int = Field(default=3, ge=1, le=100)
    backoff_max_s: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _cycle_fits(self) -> PollingSettings:
        if self.interval_s * self.spread + self.deadline_s >= self.interval_s:
            busy = self.interval_s * self.spread + self.deadline_s
            raise ValueError(
                f"a cycle cannot end in time: interval_s x spread + deadline_s = {busy:g} s "
                f"must be below interval_s ({self.interval_s:g} s)"
            )
        return self


class StorageSettings(_Section):
    raw_retention_h: float = Field(default=24.0, gt=0, le=24 * 90)


class MeteringSettings(_Section):
    max_gap_s: int = Field(default=1800, ge=30, le=24 * 3600)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)


class MinerCredentials(_Section):
    username: str | None = None
    password: str | None = None


def _factory_credentials() -> dict[FirmwareFamily, MinerCredentials]:
    return {
        FirmwareFamily.ANTMINER: MinerCredentials(username="root", password="root"),
        FirmwareFamily.WHATSMINER: MinerCredentials(username="admin", password="admin"),
        FirmwareFamily.AVALON: MinerCredentials(username="root", password="root"),
        FirmwareFamily.BRAIINS: MinerCredentials(username="root", password="root"),
        FirmwareFamily.LUXOS: MinerCredentials(username="root", password="root"),
        FirmwareFamily.VNISH: MinerCredentials(username="admin", password="admin"),
    }


class PerKwhFee(_Section):
    description: str = Field(min_length=1, max_length=120, pattern=r"^[^=+\-@\t\r]")
    per_kwh: Decimal = Field(ge=-10, le=10)


class FixedFeeSetting(_Section):
    description: str = Field(min_length=1, max_length=120, pattern=r"^[^=+\-@\t\r]")
    amount: Decimal = Field(ge=-1_000_000, le=1_000_000)
    customers: list[str] | None = None  # None: every invoiced customer


class ContractSetting(_Section):
    """[[energy.contracts]]: contracted energy per local month and/or a demand limit, site-wide or for one
    customer. Alerts at warn_pct (projected month-end) and crit_pct (actual)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    monthly_kwh: Decimal | None = Field(default=None, gt=0, le=10**9)
    demand_limit_kw: Decimal | None = Field(default=None, gt=0, le=10**7)
    customer_id: str | None = None
    warn_pct: int = Field(default=80, ge=1, le=100)
    crit_pct: int = Field(default=95, ge=1, le=200)


class EnergyAlertsSetting(_Section):
    """[energy.alerts]: price alerts. peak_lead_min 0 turns the TOU peak warning off; no price_high_per_kwh,
    no real-time price alert (it clears below price_clear_below_per_kwh: the hysteresis band)."""

    peak_lead_min: int = Field(default=30, ge=0, le=360)
    peak_periods: list[str] | None = None  # default: the period with the highest rate
    price_high_per_kwh: Decimal | None = None
    price_clear_below_per_kwh: Decimal | None = None

    @model_validator(mode="after")
    def _band(self) -> EnergyAlertsSetting:
        high, low = self.price_high_per_kwh, self.price_clear_below_per_kwh
        if (high is None) != (low is None):
            raise ValueError("set both price_high_per_kwh and price_clear_below_per_kwh, or neither")
        if high is not None and low is not None and not low < high:
            raise ValueError("price_clear_below_per_kwh must be below price_high_per_kwh")
        return self


class EnergySettings(_Section):
    """[energy]: how customers are settled. Money as TOML strings ("0.0042") keeps it exact."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    demand_interval_min: Literal[15, 30, 60] = 15  # the utility's demand interval (tariffs say it in prose)
    pass_through_demand: bool = True  # demand charges passed to customers by coincident peak
    pue: Decimal | None = Field(default=None, ge=1, le=3)
    facility_adder_per_kwh: Decimal | None = Field(default=None, ge=0, le=10)
    adders: list[PerKwhFee] = Field(default_factory=list)
    fixed_fees: list[FixedFeeSetting] = Field(default_factory=list)
    service_fee_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    tax_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    carbon_kg_per_kwh: Decimal | None = Field(default=None, ge=0, le=2)  # kg CO2 per kWh (not lb/MWh)
    carbon_factor_source: str = Field(default="", max_length=200)  # e.g. "EPA eGRID2022, subregion ERCT"
    carbon_factor_year: int | None = Field(default=None, ge=1990, le=2100)  # the factor's data year
    # How far back each 15-minute refresh of the site aggregates re-reads energy_15m (late energy lands).
    site_energy_lookback_s: int = Field(default=172_800, ge=900, le=3_456_000)
    contracts: list[ContractSetting] = Field(default_factory=list)
    alerts: EnergyAlertsSetting = EnergyAlertsSetting()
    # Curtailment credits on the drafts, from the executor's verified sleeps (conservative saving):
    # "off", "cost_saved" (the energy cost the customer did not incur) or "per_kwh" (at the rate below).
    curtailment_credits: Literal["off", "cost_saved", "per_kwh"] = "off"
    curtailment_credit_per_kwh: Decimal | None = Field(default=None, ge=0, le=10)

    @model_validator(mode="after")
    def _one_facility_form(self) -> EnergySettings:
        if self.pue is not None and self.facility_adder_per_kwh is not None:
            raise ValueError("set pue or facility_adder_per_kwh, not both")
        if self.curtailment_credits == "per_kwh" and self.curtailment_credit_per_kwh is None:
            raise ValueError("curtailment_credits = 'per_kwh' needs curtailment_credit_per_kwh")
        if self.carbon_kg_per_kwh is not None and (
            not self.carbon_factor_source.strip() or self.carbon_factor_year is None
        ):
            raise ValueError("carbon_kg_per_kwh needs carbon_factor_source and carbon_factor_year")
        return self


class CurtailSettings(_Section):
    """[curtail]: the running gateway plans curtailment every `replan_interval_s` from the prices stored
    under `price_series` (`hashinsight prices import`) and carries the plan out on the miners.

    Off by default: sleeping miners is a decision a site makes, never a side effect of an upgrade. Periods
    are 15 minutes (the price intervals'). Money as TOML strings ("0.045") keeps it exact; 4CP windows are
    TOML datetimes with an offset, `[[2026-08-20T16:00:00-05:00, 2026-08-20T17:00:00-05:00]]`. Uptime
    commitments: `customer_min_uptime_pct = { acme = "80" }` (percent of the customer's miner-periods).
    Demand charges come from the active tariff, not from here."""

    enabled: bool = False
    price_series: str = Field(default="", max_length=64, pattern=r"^([^=+\-@\t\r].*)?$")
    horizon_periods: int = Field(default=96, ge=1, le=672)  # 15-minute periods planned ahead
    replan_interval_s: int = Field(default=900, ge=60, le=86_400)
    hashprice_usd_per_th_day: Decimal = Field(default=Decimal("0.045"), ge=0, le=100)
    pool_fee: Decimal = Field(default=Decimal("0.02"), ge=0, lt=1)
    pue: Decimal = Field(default=Decimal("1.0"), ge=1, le=3)
    adder_per_kwh: Decimal = Field(default=Decimal(0), ge=-10, le=10)
    site_cap_kw: float | None = Field(default=None, gt=0)
    ramp_kw_per_period: float | None = Field(default=None, gt=0)
    min_on_periods: int = Field(default=4, ge=1, le=96)
    min_off_periods: int = Field(default=4, ge=1, le=96)
    cp_windows: list[tuple[datetime, datetime]] = Field(default_factory=list, max_length=1000)
    cp_charge_per_kw: Decimal = Field(default=Decimal(0), ge=0, le=10_000)
    cp_max_kw: float | None = Field(default=None, ge=0)  # site load cap inside a 4CP window
    # dr_signal is not accepted: no demand-response feed exists yet, so nothing could ever report it lost
    # and a configured response would silently never apply (see `_usable`).
    fail_policy: dict[str, Literal["hold", "curtail", "resume"]] = Field(default_factory=dict)
    solver: Literal["highs", "cbc"] = "highs"
    time_limit_s: float = Field(default=10.0, gt=0, le=300)
    batch_size: int = Field(default=10, ge=1, le=1000)  # miners switched at once
    batch_gap_s: float = Field(default=5.0, ge=0, le=600)
    verify_window_s: int = Field(default=900, ge=1, le=7200)  # telemetry must show a change by then
    # {customer id = percent}: the share of a customer's miner-periods over the planning horizon that must
    # run, whatever the price (its contract's uptime commitment). Customers are state.db owners.
    customer_min_uptime_pct: dict[str, Decimal] = Field(default_factory=dict, max_length=1000)
    plan_history_days: int = Field(default=30, ge=1, le=366)  # adopted plans kept in state.db

    @model_validator(mode="after")
    def _usable(self) -> CurtailSettings:
        if self.enabled and not self.price_series:
            raise ValueError("enabled curtailment needs price_series (the name given to `prices import`)")
        for key in self.fail_policy:
            if key == "dr_signal":
                raise ValueError(
                    "fail_policy.dr_signal: not supported yet - this gateway has no demand-response feed, so "
                    "the signal can never be reported lost; known 4CP windows go in cp_windows"
                )
            if key not in ("price_feed", "planner"):
                raise ValueError(f"fail_policy.{key[:40]}: unknown input (known: price_feed, planner)")
        for customer, pct in self.customer_min_uptime_pct.items():
            if not 1 <= len(customer) <= 64 or customer[0] in "=+-@\t\r":
                raise ValueError(
                    f"customer_min_uptime_pct: customer id {customer[:40]!r}: 1-64 characters, "
                    "not starting with = + - @"
                )
            if not (pct.is_finite() and 0 <= pct <= 100):
                raise ValueError(f"customer_min_uptime_pct.{customer}: a percentage 0..100, not {pct}")
        for n, (start, end) in enumerate(self.cp_windows):
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError(f"cp_windows[{n}]: write times with their UTC offset (e.g. -05:00)")
            if not start < end:
                raise ValueError(f"cp_windows[{n}]: the start must be before the end")
        return self


class Settings(_Section):
    demo: bool = False
    data_dir: Path | None = None
    site: SiteSettings = SiteSettings()
    polling: PollingSettings = PollingSettings()
    storage: StorageSettings = StorageSettings()
    metering: MeteringSettings = MeteringSettings()
    api: ApiSettings = ApiSettings()
    credentials: dict[FirmwareFamily, MinerCredentials] = Field(default_factory=_factory_credentials)
    notifications: NotificationSettings = NotificationSettings()
    rules: RulesSection = Field(default_factory=RulesSection)  # [rules]: overrides, pool allow-list
    energy: EnergySettings = EnergySettings()
    curtail: CurtailSettings = CurtailSettings()  # [curtail]: the running gateway's curtailment

    @model_validator(mode="after")
    def _no_factory_passwords_on_a_site(self) -> Settings:
        if self.demo:
            return self
        for family, creds in self.credentials.items():
            if creds.password in FACTORY_PASSWORDS:
                raise ValueError(
                    f"credentials.{family.value}.password is a factory default; set the site's real "
                    f"password (env {ENV_PREFIX}CREDENTIALS__{family.value.upper()}__PASSWORD) or demo = true"
                )
        return self


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """HASHINSIGHT_A__B=v -> {"a": {"b": "v"}}. Values stay strings; pydantic converts them."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from `path` (TOML), then HASHINSIGHT_* environment overrides, then `overrides`."""
    environ = dict(os.environ) if environ is None else environ
    source = str(path) if path else "defaults"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from err
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from err
        # Notification secrets reach places a miner password does not (a receiver, a bot): keep them
        # out of a file that gets copied around and committed (ARCHITECTURE §8).
        if inline := inline_secrets(raw):
            raise ConfigError(f"{path}: secrets must not be written in the file: " + "; ".join(inline))
    raw = _merge(_merge(raw, _env_overrides(environ)), overrides)
    if "credentials" in raw:
        raw["credentials"] = _merge(
            {f.value: c.model_dump() for f, c in _factory_credentials().items()}, raw["credentials"]
        )
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from err


def describe(settings: Settings) -> dict[str, Any]:
    """The effective settings, passwords masked, for `hashinsight config check`."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for creds in data.get("credentials", {}).values():
        if creds.get("password") is not None:
            creds["password"] = "***"
    return data
