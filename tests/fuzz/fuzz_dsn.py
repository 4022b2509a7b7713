"""atheris (coverage-guided) target: the DSN parser, clusterdb.core.dsn.

Run: ``python tests/fuzz/fuzz_dsn.py [libFuzzer flags]`` (``make fuzz`` runs it for longer;
tests/fuzz/test_fuzz_targets.py runs it briefly inside ``make test``).

Contract checked on every input: ``parse_dsn`` returns ``{str: str}`` or raises ConfigError,
whose message never holds the password given after ``password=``; a conninfo result written
back by ``format_conninfo`` parses to the same dict.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["clusterdb.core.dsn"]):
    from clusterdb.core.dsn import format_conninfo, is_url, parse_dsn
    from clusterdb.errors import ConfigError

SECRET = "Zq7sEcReT"


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    head = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 64))
    tail = provider.ConsumeUnicodeNoSurrogates(64)
    with_secret = provider.ConsumeBool()
    text = f"{head} password={SECRET}{tail}" if with_secret else head + tail
    try:
        parsed = parse_dsn(text)
    except ConfigError as exc:
        if with_secret:
            assert SECRET not in str(exc), (text, str(exc))
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
    if not is_url(text) and parsed:
        assert parse_dsn(format_conninfo(parsed)) == parsed, text


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
