"""Shared machinery of the passes: the registry, IR helpers, scalar rules."""
