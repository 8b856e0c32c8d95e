"""Pure parser for stock Antminer firmware (bmminer / "cgminer 1.0.0", S9 through S21).

Capture keys: RPC `stats`, `summary`, `pools`, `version`, `devs`; web CGI `stats.cgi`, `summary.cgi`,
`pools.cgi`, `get_system_info.cgi`, `get_miner_conf.cgi`. Any subset may be present: `stats` alone is
enough for a sample, and an S21 whose RPC is off is read from the CGI set alone. Both shapes of `stats`
(keyed and list, see antminer_chains) are accepted under either key.

Decisions, each forced by a capture or by the lack of a public source:

* **Sleep.** Stock firmware does not say "sleeping" in its readings. What it is configured to do is in
  `get_miner_conf.cgi` `bitmain-work-mode` (a string: "0" normal, "1" sleep, "3" low power; the write key
  is `miner-mode`, an int) and, on the list-shaped stats, `miner-mode`. The keyed stats' `Mode` is read only
  for 254, which foreman-apps (StockPowerModeStrategy) treats as "sleeping" on older models. `Mode: 2`
  is NOT a sleep flag: the same firmware reports it hashing at 110 TH/s (s19pro_fw2022) and asleep
  (s19_sleeping). No public source says what 2 means, so it is ignored; the driver fetches
  get_miner_conf.cgi whenever a miner is not hashing, which is the only time the answer matters.
* **Asleep chips read 'x'.** A sleeping S19 shows `chain_acs` 'xx xx ...': the chips are powered down, not
  broken. Boards of a sleeping miner are reported inactive, with `chips_ok` None (unknown), never 0.
* **Not hashing and not asleep.** `error` when the firmware shows a fault (every detected chip 'x', no
  chain detected, or a failed check in summary.cgi's status list) — e.g. the overheated S19 that shut its
  chains down; otherwise `idle` (reachable, chains fine, no work: no pool, warming up). Without
  get_miner_conf a sleeping S19 and a faulted one look alike in `stats`; we then say `error` and note it.
* **Missing boards.** A board the profile expects but the firmware does not list is reported as an
  inactive board (with a note in `errors`), not as a dead one: there is nothing to read from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError
from gateway.devices.model import (
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    Mode,
    Sample,
)
from gateway.devices.parsers.antminer_chains import (
    ChainReading,
    assemble_boards,
    inlet_outlet,
    rate_unit,
    read_chains,
    read_fans,
)
from gateway.devices.parsers.antminer_shares import counter, hw_errors, last_share, read_pools
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    check_status,
    estimated_power,
    expected_hashrate,
    first_present,
    first_section,
    integer,
    rate_to_ths,
    section,
    status_entry,
)

MAKE = "Antminer"
# Problems the driver met while fetching (an optional CGI that failed, RPC down so the web was used).
FETCH_ERRORS_KEY = "_fetch_errors"

_STATS_KEYS = ("stats", "stats.cgi")
_SUMMARY_KEYS = ("summary", "summary.cgi")
_POOLS_KEYS = ("pools", "pools.cgi")
_READING_MARKERS = ("GHS 5s", "rate_5s", "Elapsed", "elapsed", "chain", "chain_acn1", "ID")
_WORK_MODES = {0: Mode.NORMAL, 1: Mode.SLEEP, 3: Mode.LOW}
_LEGACY_SLEEP_MODE = 254


@dataclass(slots=True)
class _Replies:
    """The capture's replies, with error replies turned into notes (and kept, in case nothing else works)."""

    capture: Capture
    errors: list[str] = field(default_factory=list)
    failures: dict[str, DeviceError] = field(default_factory=dict)
    _seen: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)

    def get(self, key: str) -> Mapping[str, Any] | None:
        if key not in self._seen:
            self._seen[key] = self._check(key)
        return self._seen[key]

    def _check(self, key: str) -> Mapping[str, Any] | None:
        reply = self.capture.get(key)
        if reply is None:
            return None
        if not isinstance(reply, Mapping):
            self.errors.append(f"{key}: expected a JSON object, got {type(reply).__name__}")
            return None
        try:
            check_status(reply, key)
        except DeviceError as err:
            self.failures[key] = err
            self.errors.append(str(err))
            return None
        return reply


class AntminerParser:
    command_keys: Mapping[str, str] = MappingProxyType(
        {key: key for key in (*_STATS_KEYS, *_SUMMARY_KEYS, *_POOLS_KEYS, "version", "devs")}
        | {"get_system_info.cgi": "get_system_info.cgi", "get_miner_conf.cgi": "get_miner_conf.cgi"}
    )

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        replies = _Replies(capture)
        # The inventory's model hint may fill in a model the firmware did not state, but a capture from
        # which the firmware itself said nothing identifies nothing.
        said = _identity(replies, dataclasses.replace(ctx, model_hint=None))
        if said.model is None and said.firmware_version is None and said.mac is None:
            if replies.failures:
                raise next(iter(replies.failures.values()))
            raise ProtocolError(
                "antminer: nothing to identify from: need version, stats or get_system_info.cgi"
            )
        return _identity(replies, ctx)

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        replies = _Replies(capture)
        stats = _first_entry(replies, _STATS_KEYS, _stats_entry)
        summary = _first_entry(replies, _SUMMARY_KEYS, _summary_entry)
        if not stats and not summary:
            for key in (*_STATS_KEYS, *_SUMMARY_KEYS):
                if key in replies.failures:
                    raise replies.failures[key]
            present = ", ".join(sorted(capture)) or "nothing"
            raise ProtocolError(
                "antminer: no stats or summary to read"
                f" (need one of stats, stats.cgi, summary, summary.cgi; got {present})"
            )
        errors = replies.errors
        errors.extend(str(e) for e in capture.get(FETCH_ERRORS_KEY) or ())
        identity = _identity(replies, ctx)
        profile = ctx.profile_for(MAKE, identity.model)
        if not stats:
            errors.append("stats missing: no boards, fans or temperatures this poll")

        chains = read_chains(stats)
        hashrate = _rate(stats, ("GHS 5s", "rate_5s"), summary)
        if hashrate is None and any(c.hashrate_ths is not None for c in chains):
            hashrate = sum(c.hashrate_ths or 0.0 for c in chains)
        mode = _mode(replies, stats, errors)
        faults = _faults(summary, errors)
        status = _status(hashrate, mode, chains, faults, has_stats=bool(stats), errors=errors)
        asleep = status is MinerStatus.SLEEPING
        boards = assemble_boards(chains, asleep=asleep, profile=profile, errors=errors)

        power_mode = Mode.SLEEP if asleep else (None if mode is Mode.SLEEP else mode)
        power_w, power_source = estimated_power(profile, hashrate, power_mode)
        # The firmware's ideal rate is what the hardware is rated for at its set frequency; it is reported
        # asleep too (the sleeping S19 says 63.9 TH/s), and so is the profile fallback: normal mode, not 0.
        ideal = _rate(stats, ("total_rateideal", "rate_ideal"), summary)
        expected, expected_source = expected_hashrate(ideal, profile, None if mode is Mode.SLEEP else mode)
        pools = read_pools(_first_entries(replies, _POOLS_KEYS, "POOLS"))
        active = next((p for p in pools if p.active), None)
        counters = summary or {}
        inlet, outlet = inlet_outlet(chains, identity.model)
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=status,
            hashrate_ths=hashrate,
            hashrate_avg_ths=_rate(stats, ("GHS av", "rate_avg"), summary),
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=power_w,
            power_source=power_source,
            boards=boards,
            fans_rpm=read_fans(stats, profile.fans if profile else None),
            inlet_c=inlet,
            outlet_c=outlet,
            accepted=counter(counters, "Accepted", pools, lambda p: p.accepted),
            rejected=counter(counters, "Rejected", pools, lambda p: p.rejected),
            hw_errors=hw_errors(counters, stats, chains),
            last_share_ts=last_share(pools, _first_entries(replies, ("devs",), "DEVS")),
            pool_url=active.url if active else None,
            pools=pools,
            uptime_s=integer(first_present(stats or counters, "Elapsed", "elapsed")),
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )


PARSER = AntminerParser()


def has_readings(capture: Capture) -> bool:
    """Whether a capture holds a usable stats or summary reply (the driver's cue to try the web CGI)."""
    replies = _Replies(capture)
    return bool(
        _first_entry(replies, _STATS_KEYS, _stats_entry)
        or _first_entry(replies, _SUMMARY_KEYS, _summary_entry)
    )


def is_hashing(capture: Capture) -> bool:
    """Whether the capture shows a non-zero real-time rate; if not, only get_miner_conf can tell sleep
    from fault, so the driver fetches it."""
    replies = _Replies(capture)
    stats = _first_entry(replies, _STATS_KEYS, _stats_entry)
    summary = _first_entry(replies, _SUMMARY_KEYS, _summary_entry)
    return bool(_rate(stats, ("GHS 5s", "rate_5s"), summary))


# --- sources ---------------------------------------------------------------------------------------


def _stats_entry(reply: Mapping[str, Any]) -> Mapping[str, Any]:
    """The readings entry of STATS. Keyed stats put a version block first ({BMMiner, Type, ...}) and the
    readings ({ID: "BC50" / "BTM_SOC0", ...}) second; the list shape has a single entry."""
    return next((e for e in section(reply, "STATS") if any(k in e for k in _READING_MARKERS)), {})


def _summary_entry(reply: Mapping[str, Any]) -> Mapping[str, Any]:
    return first_section(reply, "SUMMARY")


def _first_entry(
    replies: _Replies, keys: tuple[str, ...], pick: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> Mapping[str, Any]:
    for key in keys:
        reply = replies.get(key)
        entry: Mapping[str, Any] = pick(reply) if reply is not None else {}
        if entry:
            return entry
    return {}


def _first_entries(replies: _Replies, keys: tuple[str, ...], name: str) -> list[Mapping[str, Any]]:
    for key in keys:
        reply = replies.get(key)
        if reply is not None and (entries := section(reply, name)):
            return entries
    return []


def _rate(stats: Mapping[str, Any], keys: tuple[str, ...], summary: Mapping[str, Any]) -> float | None:
    """A rate from stats, else summary, each converted by its own `rate_unit` ("GH" keyed, "GH/s" list)."""
    for entry in (stats, summary):
        value = first_present(entry, *keys)
        if value is not None and (ths := rate_to_ths(value, rate_unit(entry))) is not None:
            return ths
    return None


# --- identity --------------------------------------------------------------------------------------


def _identity(replies: _Replies, ctx: ParseContext) -> MinerIdentity:
    version = first_section(replies.get("version"), "VERSION")
    blocks = [version]
    for key in (*_STATS_KEYS, *_SUMMARY_KEYS):
        reply = replies.get(key)
        if reply is not None:
            blocks.extend(e for e in section(reply, "STATS") if "Type" in e or "CompileTime" in e)
            blocks.append(first_section(reply, "INFO"))
    system = replies.get("get_system_info.cgi") or {}
    raw_type = next((b.get(k) for b in blocks for k in ("Type", "type") if b.get(k)), None) or system.get(
        "minertype"
    )
    model = _model_name(raw_type) or ctx.model_hint
    compile_time = next((b["CompileTime"] for b in blocks if b.get("CompileTime")), None)
    firmware_version = _clean(
        compile_time
        or system.get("system_filesystem_version")
        or next((b.get("Miner") for b in blocks if b.get("Miner")), None)
    )
    # The list-shaped stats carry their API version in the STATUS object ("api_version": "1.0.0").
    list_api = next((v for k in _STATS_KEYS if (v := status_entry(replies.get(k)).get("api_version"))), None)
    api_version = _clean(version.get("API") or list_api)
    profile = ctx.profile_for(MAKE, model)
    return MinerIdentity(
        make=MAKE,
        model=model,
        firmware=FirmwareFamily.ANTMINER,
        firmware_version=firmware_version,
        api_version=api_version,
        mac=_clean(system.get("macaddr")),
        serial=_clean(system.get("serinum")),
        hostname=_clean(system.get("hostname")),
        profile_key=profile.key if profile else None,
    )


def _model_name(raw: Any) -> str | None:
    """'Antminer S9\\nV1.3.58' -> 'S9' (the S9 appends its hardware revision on a second line);
    'Antminer S19 Pro' -> 'S19 Pro'."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    first_line = raw.strip().splitlines()[0].strip()
    name = first_line[len(MAKE) :].strip() if first_line.lower().startswith(MAKE.lower()) else first_line
    return name or None


def _clean(value: Any) -> str | None:
    """Strip and collapse whitespace ("Tue Dec  6 16:12:30 CST 2022"); empty strings are None."""
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


# --- mode and status -------------------------------------------------------------------------------


def _mode(replies: _Replies, stats: Mapping[str, Any], errors: list[str]) -> Mode | None:
    conf = replies.get("get_miner_conf.cgi")
    for source, raw in (
        ("get_miner_conf.cgi bitmain-work-mode", (conf or {}).get("bitmain-work-mode")),
        ("stats miner-mode", stats.get("miner-mode")),
    ):
        if raw is None or raw == "":
            continue
        code = integer(raw)
        if code in _WORK_MODES:
            return _WORK_MODES[code]
        errors.append(f"{source}: unknown work mode {raw!r}")
    if integer(stats.get("Mode")) == _LEGACY_SLEEP_MODE:
        return Mode.SLEEP
    return None


def _faults(summary: Mapping[str, Any], errors: list[str]) -> bool:
    """summary.cgi's self-check list ({type: rate|network|fans|temp, status: "s"|...}); a non-"s" entry is
    a firmware-reported fault and goes into `errors` as the firmware words it."""
    checks = summary.get("status")
    found = False
    for check in checks if isinstance(checks, list) else ():
        if isinstance(check, Mapping) and check.get("status") not in (None, "s"):
            found = True
            what = f"summary.cgi: {check.get('type')} check {check.get('status')!r} code {check.get('code')}"
            errors.append(f"{what}: {check['msg']}" if check.get("msg") else what)
    return found


def _status(
    hashrate: float | None,
    mode: Mode | None,
    chains: list[ChainReading],
    faults: bool,
    *,
    has_stats: bool,
    errors: list[str],
) -> MinerStatus:
    if hashrate:
        if mode is Mode.SLEEP:
            # A mode change restarts the mining process and takes minutes; until then it still hashes.
            errors.append("configured to sleep but still hashing (mode change in progress?)")
        return MinerStatus.MINING
    if mode is Mode.SLEEP:
        return MinerStatus.SLEEPING
    dead_chips = any(c.chip_map and c.chips_ok == 0 for c in chains)
    if faults or dead_chips or (has_stats and not chains):
        if dead_chips and mode is None:
            errors.append(
                "not hashing and every chip reads 'x': a fault, or asleep (get_miner_conf.cgi would tell)"
            )
        return MinerStatus.ERROR
    return MinerStatus.IDLE


__all__ = ["FETCH_ERRORS_KEY", "PARSER", "AntminerParser", "has_readings", "is_hashing"]
