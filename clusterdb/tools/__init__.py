"""Operator tools (CLI, report, demo); never imported by the library."""
