"""Tests for gateway.energy."""
