"""The pure core: descriptions, selection, estimates, policies, redaction.

Imports no socket, thread, clock or driver (checked by `make lint`).
"""
