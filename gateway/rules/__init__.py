"""Health rules: baselines (numpy), the catalog (rules as data) and one pure engine."""
