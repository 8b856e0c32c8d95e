"""Curtailment: economics, the planner (pure), its solver subprocess, and the backtest.

The executor, savings and override modules consume a `plan_model.Plan`; nothing here talks to miners.
"""
