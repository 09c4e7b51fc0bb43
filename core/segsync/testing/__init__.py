"""Helpers for testing segsync plugins and connectors (the conformance kit)."""
