"""The `[rules]` section of `site.toml`: its shape (pydantic) and its resolution into a `RuleTable`.

    [rules]
    allowed_pools = ["stratum+tcp://btc.example-pool.com:3333", "backup.example-pool.com"]

    [rules.overheat_crit]          # site-wide: any rule id from the catalog
    temp_c = 88                    # the rule's threshold, by its own name (or `threshold = 88`)
    debounce_samples = 3

    [rules.models.antminer_s9.overheat_warn]   # for one firmware profile (file name without .toml)
    temp_c = 70

Keys per rule: its threshold (`threshold`, or its name such as `temp_c`, `z`, `stale_after_s`),
`debounce_samples`, `debounce_s`, `clear_window_s`, `cooldown_s`, `enabled`. Values must be TOML
numbers (booleans for `enabled`): a quoted "90" is refused rather than guessed at, and so the
`HASHINSIGHT_*` environment overrides (strings) do not reach this section.

pydantic checks the shape; the meaning (unknown rule or key, out-of-range value, warn above crit) is
checked by `catalog.apply_overrides`, whose message names the exact key, at settings load.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.rules.catalog import CATALOG, Rule, RuleConfigError, RuleTable, apply_overrides


class RulesSection(BaseModel):
    """`[rules]`: every key other than `allowed_pools` and `models` is a rule id with its overrides."""

    model_config = ConfigDict(extra="allow", frozen=True)

    allowed_pools: tuple[str, ...] | None = None
    models: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)

    @property
    def site_overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _meaningful(self) -> RulesSection:
        self.table()  # RuleConfigError is a ValueError: pydantic reports it under `rules`
        return self

    def table(
        self, rules: tuple[Rule, ...] = CATALOG, *, known_models: Collection[str] | None = None
    ) -> RuleTable:
        return apply_overrides(
            rules,
            self.site_overrides,
            self.models,
            known_models=known_models,
            allowed_pools=self.allowed_pools,
        )


def rules_from_config(
    raw: dict[str, Any] | None,
    rules: tuple[Rule, ...] = CATALOG,
    *,
    known_models: Collection[str] | None = None,
) -> RuleTable:
    """The site's rule table from the raw `[rules]` mapping (as parsed from TOML). Raises
    `RuleConfigError` (a ValueError) naming the key at fault. The same checks as `RulesSection`, for
    callers that hold the raw TOML rather than a validated `Settings`."""
    raw = dict(raw or {})
    pools = raw.pop("allowed_pools", None)
    models = raw.pop("models", {})
    if pools is not None and (isinstance(pools, str) or not all(isinstance(url, str) for url in pools)):
        raise RuleConfigError(f"rules.allowed_pools: expected a list of pool URLs, got {pools!r}")
    if not isinstance(models, dict):
        raise RuleConfigError(f"rules.models: expected a table per model, got {type(models).__name__}")
    return apply_overrides(rules, raw, models, known_models=known_models, allowed_pools=pools)
