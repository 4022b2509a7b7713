"""The session state a MySQL/MariaDB OK packet carries (pure): the tracked ``last_gtid``.

With ``CLIENT_SESSION_TRACK`` asked for at the handshake, what follows an OK packet's status
and warning count (PyMySQL keeps it as ``message``) is::

    info           string<lenenc>
    state block    string<lenenc>   only when the status has SERVER_SESSION_STATE_CHANGED
      entries:     type int<1>, data string<lenenc>
      type 0 (SESSION_TRACK_SYSTEM_VARIABLES): data = name string<lenenc>, value string<lenenc>

A length-encoded integer is one byte below 0xFB, else 0xFC/0xFD/0xFE followed by 2/3/8
little-endian bytes. Why: with ``session_track_system_variables`` naming ``last_gtid``, MariaDB
reports the session's last GTID in the OK of the statement (or COMMIT) that wrote it, so a
read-your-writes token costs no round trip.
"""

from __future__ import annotations

__all__ = [
    "SESSION_STATE_CHANGED",
    "SYSTEM_VARIABLES",
    "last_gtid",
    "lenenc",
    "system_variables",
]

SESSION_STATE_CHANGED = 0x4000
"""The OK packet's status flag that says a state block follows the info string."""
SYSTEM_VARIABLES = 0
"""SESSION_TRACK_SYSTEM_VARIABLES: an entry whose data is a variable's name and value."""

_WIDTH = {0xFC: 2, 0xFD: 3, 0xFE: 8}


def lenenc(data: bytes, at: int) -> tuple[int, int] | None:
    """The length-encoded integer at ``data[at]`` and where it ends; None when ``data`` ends
    first or the first byte is 0xFB (NULL) or 0xFF (not an integer)."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0xFB:
        return first, at + 1
    width = _WIDTH.get(first)
    if width is None or at + 1 + width > len(data):
        return None
    return int.from_bytes(data[at + 1 : at + 1 + width], "little"), at + 1 + width


def _string(data: bytes, at: int) -> tuple[bytes, int] | None:
    """The length-encoded string at ``data[at]`` and where it ends (None: truncated)."""
    found = lenenc(data, at)
    if found is None or found[0] + found[1] > len(data):
        return None
    size, start = found
    return data[start : start + size], start + size


def system_variables(message: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (name, value) pairs a state-changed OK's ``message`` (info string, then state
    block) reports, in order; None when it is malformed or has no state block."""
    info = _string(message, 0)
    if info is None:
        return None
    block = _string(message, info[1])
    if block is None:
        return None
    state, at = block[0], 0
    found: list[tuple[bytes, bytes]] = []
    while at < len(state):
        kind = state[at]
        entry = _string(state, at + 1)
        if entry is None:
            return None
        data, at = entry
        if kind != SYSTEM_VARIABLES:
            continue
        name = _string(data, 0)
        value = None if name is None else _string(data, name[1])
        if name is None or value is None:
            return None
        found.append((name[0], value[0]))
    return found


def last_gtid(message: bytes | None) -> str | None:
    """The last ``last_gtid`` value a state-changed OK's ``message`` reports (``0-1-42``),
    None when it reports none or an empty one (or is malformed: the caller then asks the server)."""
    if not message:
        return None
    pairs = system_variables(message)
    if not pairs:
        return None
    value = None
    for name, text in pairs:
        if name == b"last_gtid":
            value = text
    if not value:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None
