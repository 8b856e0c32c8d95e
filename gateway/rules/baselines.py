"""What "normal" looks like, per miner and per model, learned from the fleet's own readings (numpy).

Per miner: EWMA (alpha 0.1) with exponentially weighted variance of hashrate, efficiency (W/TH, measured
power only) and hottest-board temperature; a rolling window of power (mean/std); the inferred operating
mode (modes.py); a lower CUSUM of hashrate against a slow reference; when the accepted-share count last
moved. Per model and mode: median and MAD of this cycle's hashrate and W/TH (robust z).

Four decisions matter more than the arithmetic:

- Every score is taken against the baseline *before* this reading updates it. Updating first would
  pull the mean toward the reading and inflate the variance by it, so every z-score saturates near
  sqrt((1 - alpha) / alpha) = 3 whatever the jump: a 30 C jump would score like a 1 C one.
- The baseline learns robustly (stats.ew_update): a reading beyond 2.5 sigma moves the mean as if it
  were at 2.5, one beyond 4 does not widen the variance. Otherwise a 10 % hashrate drop widens the
  band so fast that it stops scoring within three polls, before any debounce could open an alert.
- A slow drift is invisible to an EWMA, which follows it (chasing a 1 %/poll slide it lags ~9 % behind
  yet scores z ~ -1, its variance grown with the slide). The CUSUM accumulates each reading's shortfall
  in units of poll-to-poll noise (which a steady slide does not widen) against a reference that learns
  by at most k sigmas a reading and not at all once evidence builds up, so the slide adds up.
- A baseline is only as good as its data: nothing is learned from a miner that is not hashing, that
  started hashing less than `settle_s` ago (wake-up ramps), or whose reading is not new; a mode change
  makes the miner re-learn (`warmup` readings, during which its soft rules are unknown).

One call per cycle, `observe(frame)`, scores then updates, and returns the `Scores` the engine reads.
State is keyed by site and miner id, persists as versioned .npz bytes (`to_bytes`/`from_bytes`), and
follows the fleet: a new miner gets fresh rows, a removed one is dropped.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gateway.rules import modes
from gateway.rules.inputs import F64, I8, NORMAL, OFFLINE, SLEEP, UNKNOWN, B, FleetFrame
from gateway.rules.stats import Column, debias, ew_update, robust_z, window_stats

FORMAT_VERSION = 1


class BaselineError(ValueError):
    """Stored baselines cannot be used (wrong site, unknown format, damaged bytes). Start fresh."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineParams:
    alpha: float = 0.1  # EWMA weight of a new reading
    warmup: int = 10  # readings before a miner's own baseline is trusted
    learn_clip: float = 2.5  # beyond this z a reading moves the mean as if it were at this z
    learn_reject: float = 4.0  # beyond this z a reading does not widen the variance (see stats.ew_update)
    window: int = 20  # rolling power window (readings)
    settle_s: float = 300.0  # after (re)starting to hash, readings are not scored nor learned
    ref_alpha: float = 0.02  # the CUSUM reference learns this slowly, by at most k sigmas a reading
    noise_alpha: float = 0.05  # weight of a new poll-to-poll difference in the noise estimate
    cusum_k: float = 1.5  # allowance, in sigmas: shortfalls smaller than this do not accumulate
    cusum_clip: float = 4.0  # one reading adds at most this much: a single glitch is not a trend
    cusum_floor: float = -30.0  # bounded memory: a recovered miner clears within (floor - h) / k readings
    cusum_freeze: float = -3.0  # below this the reference stops learning: the evidence is building up
    rel_floor: float = 0.01  # a std is never taken below 1 % of its mean (noise-free synthetic data)
    temp_floor_c: float = 1.0
    power_floor_w: float = 5.0
    mode_step: float = 0.05  # a mode change moves power by at least 5 %
    mode_eff_tol: float = 0.10
    fleet_min: int = 5  # peers needed (same model and mode) for a fleet z
    kmeans_iterations: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """One cycle's scores, aligned with the frame's rows. NaN: not scorable (see `new`, `settling`)."""

    miner_ids: tuple[str, ...]
    new: B  # the sample is newer than anything the baseline has seen (else nothing was scored)
    settling: B  # hashing, but started recently or just changed mode: deliberately not scored
    hashrate_z: F64
    efficiency_z: F64
    temp_z: F64
    power_sigma: F64
    cusum: F64  # <= 0, in sigmas
    fleet_z: F64
    fleet_metric: I8  # 0: hashrate, 1: W/TH, -1: none
    mode: I8  # inferred operating mode after this reading (inputs.LOW/NORMAL/HIGH, -1 unknown)
    mode_changed: B
    share_age_s: F64  # seconds since the last accepted share (a lower bound where not exact)
    share_age_exact: B


# name: (dtype, fill, trailing shape as a function of the window)
_COLUMNS: dict[str, tuple[type, float, str]] = {
    "last_ts": (np.int64, -1, ""),
    "run_start_ts": (np.float64, np.nan, ""),  # -inf: already hashing when first seen
    "hr_n": (np.int32, 0, ""),
    "hr_mean": (np.float64, np.nan, ""),
    "hr_var": (np.float64, np.nan, ""),
    "eff_n": (np.int32, 0, ""),
    "eff_mean": (np.float64, np.nan, ""),
    "eff_var": (np.float64, np.nan, ""),
    "temp_n": (np.int32, 0, ""),
    "temp_mean": (np.float64, np.nan, ""),
    "temp_var": (np.float64, np.nan, ""),
    "ring_pos": (np.int32, 0, ""),
    "ring_power": (np.float64, np.nan, "w"),
    "ring_rate": (np.float64, np.nan, "w"),
    "mode": (np.int8, -1, ""),
    "centroids": (np.float64, np.nan, "c"),
    "cusum": (np.float64, 0.0, ""),
    "ref_mean": (np.float64, np.nan, ""),
    "hr_last": (np.float64, np.nan, ""),
    "step_n": (np.int32, 0, ""),
    "step_mean": (np.float64, 0.0, ""),
    "step_sq": (np.float64, 0.0, ""),
    "acc_last": (np.float64, np.nan, ""),
    "acc_change_ts": (np.float64, np.nan, ""),
    "acc_first_ts": (np.float64, np.nan, ""),
}


class Baselines:
    """Mutable, vectorised per-miner state for one site. Not thread-safe: one owner calls `observe`."""

    def __init__(
        self, site_id: str, params: BaselineParams | None = None, miner_ids: Sequence[str] = ()
    ) -> None:
        self.site_id = site_id
        self.params = params or BaselineParams()
        self._ids: tuple[str, ...] = tuple(miner_ids)
        self._s: dict[str, Column] = {name: self._fresh(name, len(self._ids)) for name in _COLUMNS}

    @property
    def miner_ids(self) -> tuple[str, ...]:
        return self._ids

    def column(self, name: str) -> Column:
        """A read-only view of one state column (for diagnostics and tests)."""
        view = self._s[name].view()
        view.flags.writeable = False
        return view

    def _shape(self, name: str, rows: int) -> tuple[int, ...]:
        trailing = _COLUMNS[name][2]
        if trailing == "w":
            return (rows, self.params.window)
        if trailing == "c":
            return (rows, modes.K, 2)
        return (rows,)

    def _fresh(self, name: str, rows: int) -> Column:
        dtype, fill, _ = _COLUMNS[name]
        return np.full(self._shape(name, rows), fill, dtype=dtype)

    def align(self, miner_ids: tuple[str, ...]) -> None:
        """Follow the fleet: rows in `miner_ids` order, fresh rows for new miners, removed ones dropped."""
        if miner_ids == self._ids:
            return
        where = {mid: i for i, mid in enumerate(self._ids)}
        source = np.array([where.get(mid, -1) for mid in miner_ids], dtype=np.int64)
        kept = source >= 0
        for name, old in self._s.items():
            new = self._fresh(name, len(miner_ids))
            new[kept] = old[source[kept]]
            self._s[name] = new
        self._ids = miner_ids

    def reset(self, miner_ids: Iterable[str]) -> None:
        """Forget what was learned for these miners (a repair, a swapped board: "this is normal now")."""
        forget = set(miner_ids)
        rows = np.array([i for i, mid in enumerate(self._ids) if mid in forget], dtype=np.int64)
        for name, column in self._s.items():
            column[rows] = self._fresh(name, len(rows))

    # --- the cycle -------------------------------------------------------------------------------------

    def observe(self, frame: FleetFrame) -> Scores:
        """Score this cycle's readings against the baselines as they stood, then learn from them."""
        self.align(frame.miner_ids)
        s, p = self._s, self.params
        new = frame.has_sample & (frame.ts > s["last_ts"]) & (frame.availability != OFFLINE)
        new &= frame.availability != UNKNOWN
        hashing = new & frame.hashing
        settling = self._track_runs(frame, new, hashing)
        scored = hashing & ~settling
        rate, power = frame.hashrate_ths, frame.power_w
        with np.errstate(divide="ignore", invalid="ignore"):
            eff = np.where(scored & frame.power_measured, power / rate, np.nan)
        rate_in = np.where(scored, rate, np.nan)
        temp_in = np.where(scored, frame.temp_max_c, np.nan)

        # Scores against the pre-update state.
        hr_z = self._z("hr", rate_in, p.rel_floor * np.abs(s["hr_mean"]))
        eff_z = self._z("eff", eff, p.rel_floor * np.abs(s["eff_mean"]))
        temp_z = self._z("temp", temp_in, np.full(len(frame), p.temp_floor_c))
        p_mean, p_std, p_fill = window_stats(s["ring_power"])
        p_sd = np.maximum(p_std, np.maximum(p.rel_floor * p_mean, p.power_floor_w))
        power_sigma = np.where(
            scored & frame.power_measured & (p_fill >= p.warmup), (power - p_mean) / p_sd, np.nan
        )

        mode, changed = self._infer_modes(frame, scored, p_mean, p_fill)
        for z in (hr_z, eff_z, temp_z, power_sigma):
            z[changed] = np.nan  # scored against the old mode's baseline: meaningless
        for name in ("hr_n", "eff_n", "temp_n", "ring_pos", "cusum", "step_n", "step_mean", "step_sq"):
            s[name][changed] = 0
        for name in ("ring_power", "ring_rate", "hr_last"):
            s[name][changed] = np.nan
        settling = settling | changed
        fleet_z, fleet_metric = _fleet(frame, scored & ~changed, mode, rate, eff, p)

        # Learn.
        hr_warm_before = s["hr_n"] >= p.warmup
        for prefix, x, z in (("hr", rate_in, hr_z), ("eff", eff, eff_z), ("temp", temp_in, temp_z)):
            columns = s[f"{prefix}_n"], s[f"{prefix}_mean"], s[f"{prefix}_var"]
            ew_update(x, z, *columns, p.alpha, p.learn_clip, p.learn_reject)
        cusum = self._cusum(rate_in, scored & hr_warm_before & ~changed, scored & ~hr_warm_before)
        self._push_power(scored & np.isfinite(power), power, rate)
        s["mode"] = mode
        share_age, share_exact = self._shares(frame, new)
        s["last_ts"] = np.where(new, frame.ts, s["last_ts"])
        return Scores(
            miner_ids=frame.miner_ids,
            new=new,
            settling=settling & hashing,
            hashrate_z=hr_z,
            efficiency_z=eff_z,
            temp_z=temp_z,
            power_sigma=power_sigma,
            cusum=cusum,
            fleet_z=fleet_z,
            fleet_metric=fleet_metric,
            mode=mode,
            mode_changed=changed,
            share_age_s=share_age,
            share_age_exact=share_exact,
        )

    def _z(self, prefix: str, x: F64, floor: F64) -> F64:
        """(x - mean) / sd against the state *before* x is learned; NaN until `warmup` readings."""
        s, p = self._s, self.params
        count = s[f"{prefix}_n"]
        sd = np.fmax(np.sqrt(debias(s[f"{prefix}_var"], count, p.alpha, 1)), floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x - s[f"{prefix}_mean"]) / sd
        out: F64 = np.where(count >= p.warmup, z, np.nan)
        return out

    def _track_runs(self, frame: FleetFrame, new: B, hashing: B) -> B:
        """When each miner started hashing; True where it did so less than `settle_s` ago (a miner
        ramps for minutes after a wake or a reboot, and those readings are neither normal nor faults)."""
        start = self._s["run_start_ts"]
        ts = frame.ts.astype(np.float64)
        stopped = (new & ~hashing) | (frame.availability == OFFLINE)
        start[stopped] = np.nan
        first_seen = hashing & np.isnan(start) & (self._s["last_ts"] < 0)
        start[first_seen] = -np.inf
        resumed = hashing & np.isnan(start)
        start[resumed] = ts[resumed]
        rebooted = hashing & (frame.uptime_s < self.params.settle_s)
        start[rebooted] = np.fmax(start[rebooted], ts[rebooted] - frame.uptime_s[rebooted])
        settling: B = hashing & (ts - start < self.params.settle_s)
        return settling

    def _infer_modes(self, frame: FleetFrame, eligible: B, p_level: F64, p_fill: F64) -> tuple[I8, B]:
        s, p = self._s, self.params
        unseeded = np.isnan(s["centroids"]).any(axis=(1, 2))
        if unseeded.any():
            s["centroids"][unseeded] = modes.seed_centroids(
                frame.nominal_ths[unseeded], frame.nominal_w[unseeded]
            )
        scale_w = np.where(np.isfinite(frame.nominal_w[:, NORMAL]), frame.nominal_w[:, NORMAL], p_level)
        scale_ths = np.where(
            np.isfinite(frame.nominal_ths[:, NORMAL]), frame.nominal_ths[:, NORMAL], s["hr_mean"]
        )
        # Only windows that gained a point this cycle can move their centroids.
        rows = np.flatnonzero(eligible & np.isfinite(frame.power_w))
        points = np.stack(
            [s["ring_power"][rows] / scale_w[rows, None], s["ring_rate"][rows] / scale_ths[rows, None]],
            axis=-1,
        )
        valid: B = np.isfinite(points[..., 0]) & np.isfinite(points[..., 1])
        s["centroids"][rows], _ = modes.kmeans(points, valid, s["centroids"][rows], p.kmeans_iterations)
        point = np.stack([frame.power_w / scale_w, frame.hashrate_ths / scale_ths], axis=-1)
        proposed = modes.nearest(point, s["centroids"])
        reported = (frame.reported_mode >= 0) & (frame.reported_mode != SLEEP)
        intended = (frame.intended >= 0) & (frame.intended != SLEEP)
        proposed = np.where(reported, frame.reported_mode, np.where(intended, frame.intended, proposed))
        known = s["hr_n"] >= 3
        evidence = modes.ModeEvidence(
            current=s["mode"],
            proposed=proposed.astype(np.int8),
            from_report=reported | intended,
            power_w=frame.power_w,
            hashrate_ths=frame.hashrate_ths,
            power_measured=frame.power_measured,
            power_level_w=np.where(p_fill >= 3, p_level, np.nan),
            hashrate_level_ths=np.where(known, s["hr_mean"], np.nan),
            efficiency_level=np.where(s["eff_n"] >= 3, s["eff_mean"], np.nan),
            nominal_ths=frame.nominal_ths,
            nominal_w=frame.nominal_w,
            eligible=eligible & np.isfinite(frame.power_w),
        )
        return modes.decide(evidence, p.mode_step, p.mode_eff_tol)

    def _cusum(self, rate: F64, tracking: B, establishing: B) -> F64:
        """Lower CUSUM of (rate - ref) / noise beyond an allowance of `cusum_k` sigmas, each reading
        clipped to `cusum_clip`. The noise comes from poll-to-poll differences, whose spread a steady
        slide does not widen (an EW variance around the level would grow with the slide and hide it).
        The reference learns slowly, by at most k sigmas a reading, and not at all once evidence builds
        up, so a slide cannot teach it to slide."""
        s, p = self._s, self.params
        step = rate - s["hr_last"]
        has_step = np.isfinite(step)
        s["step_n"][has_step] += 1
        for name, value in (("step_mean", step), ("step_sq", step * step)):
            s[name] = np.where(has_step, s[name] + p.noise_alpha * (value - s[name]), s[name])
        s["hr_last"] = np.where(np.isfinite(rate), rate, s["hr_last"])
        mean = debias(s["step_mean"], s["step_n"], p.noise_alpha, 0)
        noise_var = np.maximum(debias(s["step_sq"], s["step_n"], p.noise_alpha, 0) - mean * mean, 0.0) / 2
        ref = s["ref_mean"]
        sd = np.maximum(np.sqrt(noise_var), p.rel_floor * np.abs(ref))
        with np.errstate(invalid="ignore"):
            z = np.clip((rate - ref) / sd, -p.cusum_clip, p.cusum_clip)
        stat = np.clip(np.minimum(0.0, s["cusum"] + z + p.cusum_k), p.cusum_floor, 0.0)
        s["cusum"] = np.where(tracking, stat, s["cusum"])
        learning = tracking & (s["cusum"] > p.cusum_freeze)
        nudge = p.ref_alpha * np.clip(rate - ref, -p.cusum_k * sd, p.cusum_k * sd)
        s["ref_mean"] = np.where(learning, ref + nudge, np.where(establishing, s["hr_mean"], ref))
        s["cusum"] = np.where(establishing, 0.0, s["cusum"])
        out: F64 = np.where(tracking, s["cusum"], np.nan)
        return out

    def _push_power(self, rows_mask: B, power: F64, rate: F64) -> None:
        s, w = self._s, self.params.window
        rows = np.flatnonzero(rows_mask)
        pos = s["ring_pos"][rows] % w
        s["ring_power"][rows, pos] = power[rows]
        s["ring_rate"][rows, pos] = rate[rows]
        s["ring_pos"][rows] = (pos + 1) % w

    def _shares(self, frame: FleetFrame, new: B) -> tuple[F64, B]:
        """Seconds since the accepted-share count last moved (or since the firmware's own last-share
        time). Before the count has ever moved under our eyes, the age since we first saw it is a lower
        bound: enough to say "stale" once it passes the threshold, not enough to say "fine"."""
        s = self._s
        ts = frame.ts.astype(np.float64)
        seen = new & np.isfinite(frame.accepted)
        moved = seen & np.isfinite(s["acc_last"]) & (frame.accepted != s["acc_last"])
        s["acc_change_ts"] = np.where(moved, ts, s["acc_change_ts"])
        s["acc_first_ts"] = np.where(seen & np.isnan(s["acc_first_ts"]), ts, s["acc_first_ts"])
        s["acc_last"] = np.where(seen, frame.accepted, s["acc_last"])
        last_exact = np.fmax(s["acc_change_ts"], frame.last_share_ts)
        exact = np.isfinite(last_exact)
        age = np.where(exact, ts - last_exact, ts - s["acc_first_ts"])
        known = frame.has_sample & (exact | np.isfinite(s["acc_first_ts"]))
        return np.where(known, np.maximum(age, 0.0), np.nan), exact

    # --- persistence -------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned .npz (no pickles): the site id, the miner ids, the parameters and every column."""
        meta = {"format": FORMAT_VERSION, "site_id": self.site_id, "params": asdict(self.params)}
        buffer = io.BytesIO()
        arrays: dict[str, Any] = dict(self._s)
        np.savez_compressed(
            buffer, meta=np.array(json.dumps(meta)), miner_ids=np.array(self._ids, dtype=str), **arrays
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, site_id: str) -> Baselines:
        """Restore baselines saved by `to_bytes` for this site; `BaselineError` if they are not usable."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                ids = tuple(str(mid) for mid in stored["miner_ids"])
                columns = {name: stored[name] for name in _COLUMNS if name in stored.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise BaselineError(f"stored baselines are damaged or not ours: {err}") from err
        if meta.get("format") != FORMAT_VERSION:
            raise BaselineError(
                f"stored baselines have format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        if meta.get("site_id") != site_id:
            raise BaselineError(f"stored baselines belong to site {meta.get('site_id')!r}, not {site_id!r}")
        try:
            params = BaselineParams(**meta["params"])
        except (KeyError, TypeError) as err:
            raise BaselineError(f"stored baseline parameters are unusable: {err}") from err
        baselines = cls(site_id, params, ids)
        for name in _COLUMNS:
            column = columns.get(name)
            expected = baselines._shape(name, len(ids))
            if column is None or column.shape != expected:
                raise BaselineError(f"stored baselines: column {name!r} missing or of the wrong shape")
            baselines._s[name] = column.astype(_COLUMNS[name][0])
        return baselines


def _fleet(frame: FleetFrame, scored: B, mode: I8, rate: F64, eff: F64, p: BaselineParams) -> tuple[F64, I8]:
    """Robust z of hashrate and of W/TH within (model, mode); the larger in magnitude is reported."""
    group = frame.model_idx.astype(np.int64) * 4 + mode
    ok = scored & (frame.model_idx >= 0) & (mode >= 0)
    z_rate = robust_z(rate, group, ok, p.fleet_min, p.rel_floor)
    z_eff = robust_z(eff, group, ok, p.fleet_min, p.rel_floor)
    use_eff = np.abs(np.nan_to_num(z_eff)) > np.abs(np.nan_to_num(z_rate))
    z = np.where(use_eff, z_eff, z_rate)
    metric = np.where(np.isfinite(z), use_eff.astype(np.int8), -1).astype(np.int8)
    return z, metric
