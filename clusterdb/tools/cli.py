"""``python -m clusterdb``: the operator's commands.

    python -m clusterdb status [-c FILE] [--json] [--watch SECONDS] [--timeout S] [CLUSTER ...]
    python -m clusterdb check  [-c FILE] [--timeout S] [CLUSTER ...]
    python -m clusterdb demo   [--fast]

``-c FILE`` defaults to ``$CLUSTERDB_CONFIG``. A fresh process knows nothing about the nodes,
so ``status`` and ``check`` first probe every node of every cluster once (in parallel, each
bounded by the timeout); the table then shows what this process just saw, plus the role and
lag that the probe read. With ``--watch`` every refresh probes again.

Exit status: 0 success; 1 ``check`` found a cluster with no reachable primary; 2 usage or
config error (the message names the key path).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

import clusterdb
from clusterdb.config import CONFIG_ENV, known_secrets, load_file
from clusterdb.core.redact import Redactor
from clusterdb.core.stats import ClusterStats
from clusterdb.errors import ConfigError, UnknownClusterError
from clusterdb.runtime import process
from clusterdb.tools import report

__all__ = ["check_cluster", "main", "probe_cluster"]

log = logging.getLogger("clusterdb")

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

DEFAULT_TIMEOUT = 5.0


class UsageError(Exception):
    """A usage or config problem: printed as one message, exit status 2."""


# -- probing ---------------------------------------------------------------------------------


def probe_cluster(name: str, timeout: float) -> ClusterStats:
    """Probe every node of ``name`` once now (a fresh process knows nothing); the stats after."""
    return clusterdb.probe(name, timeout + 1.0)


def _up_count(stats: ClusterStats) -> str:
    up = sum(1 for n in stats.nodes if n.state == "up")
    return f"{up} of {len(stats.nodes)} nodes up"


def check_cluster(name: str, timeout: float, secrets: Iterable[str] = ()) -> tuple[bool, str]:
    """Is a primary of ``name`` reachable now? Returns ``(ok, reason)``.

    The probe refreshes every node's state; the verdict comes from a real
    ``connect(role="primary")``, the very call the application makes. The reason's first
    line is the verdict; further lines (on failure) give each node's error.
    """
    secret_list = list(secrets)
    probe_cluster(name, timeout)
    try:
        # connect_timeout is connect()'s overall deadline: a hung node cannot hang the check.
        clusterdb.connect(name, role="primary", connect_timeout=timeout).close()
    except Exception as error:
        stats = clusterdb.stats.snapshot(name)
        detail = [
            "    " + report.collapse_whitespace(line)
            for line in report.mask_secrets(str(error), secret_list).splitlines()
            if line.strip()
        ]
        return False, "\n".join([f"no reachable primary; {_up_count(stats)}", *detail])
    stats = clusterdb.stats.snapshot(name)
    primaries = [n for n in stats.nodes if n.role == "primary" and n.state == "up"]
    # A generic PEP 249 driver (sqlite3) reports no roles: the connect itself is the proof.
    where = (
        ", ".join(f"{n.name} at {n.address}" for n in primaries) or "the driver reports no roles"
    )
    return True, f"primary reachable ({where}); {_up_count(stats)}"


# -- config ----------------------------------------------------------------------------------


def _config_path(option: str | None) -> Path:
    path = option or os.environ.get(CONFIG_ENV)
    if not path:
        raise UsageError(f"no config file: pass -c FILE or set {CONFIG_ENV}")
    return Path(path)


def _load(args: argparse.Namespace) -> tuple[list[str], tuple[str, ...]]:
    """Load and register the config, then log (``-v``) scrubbed of its secrets; return
    (cluster names to show, secrets to scrub).

    The secrets are every one the library knows of the clusters loaded, whatever their source
    (inline, environment, a file relative to the config, a node's DSN, ``options``): output
    is scrubbed of them too, a second belt should a message slip past the library.
    """
    path = _config_path(args.config)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        configs = load_file(path)  # its errors are scrubbed of every secret the file holds
        for config in configs:
            process.register(config)
    except ConfigError as exc:
        raise UsageError(f"config error: {report.mask_secrets(str(exc))}") from None
    known = [config.name for config in configs]
    for name in args.clusters:
        if name not in known:
            raise UsageError(str(UnknownClusterError(name, tuple(known))))
    secrets = known_secrets(configs)
    _setup_logging(args.verbose, secrets)
    return (list(args.clusters) or known), secrets


# -- commands --------------------------------------------------------------------------------


_T = TypeVar("_T")


def _each(names: Sequence[str], fn: Callable[[str], _T]) -> list[_T]:
    """``fn`` on every cluster at once: a hung cluster costs one timeout, not one each."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(names)), thread_name_prefix="clusterdb-cli")
    try:
        return list(pool.map(fn, names))
    finally:
        # On Ctrl-C, do not wait here for probes still running (each is bounded anyway).
        pool.shutdown(wait=False, cancel_futures=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _status_once(
    names: Sequence[str], timeout: float, as_json: bool, secrets: Sequence[str], out: TextIO
) -> None:
    results = _each(names, lambda name: probe_cluster(name, timeout))
    stats = dict(zip(names, results, strict=True))
    if as_json:
        doc = report.mask_secrets_in({name: s.as_dict() for name, s in stats.items()}, secrets)
        out.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        out.write(report.render_status(stats, _now(), secrets=secrets) + "\n")
    out.flush()


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    names, secrets = _load(args)
    if args.watch is None:
        _status_once(names, args.timeout, args.json, secrets, out)
        return EXIT_OK
    interval = max(0.2, args.watch)
    clear = out.isatty() and not args.json
    try:
        while True:
            if clear:
                # Home + clear screen: the table redraws in place on a terminal.
                out.write("\x1b[H\x1b[2J")
            elif not args.json:
                out.write(f"--- {_now().isoformat(timespec='seconds')}\n")
            _status_once(names, args.timeout, args.json, secrets, out)
            time.sleep(interval)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    names, secrets = _load(args)
    status = EXIT_OK
    verdicts = _each(names, lambda name: check_cluster(name, args.timeout, secrets))
    for name, (ok, reason) in zip(names, verdicts, strict=True):
        out.write(f"{name}: {'OK' if ok else 'FAIL'}: {reason}\n")
        if not ok:
            status = EXIT_FAIL
    out.flush()
    return status


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from clusterdb.tools import demo

    _setup_logging(args.verbose)
    return demo.run(fast=args.fast, out=out)


def _timeout(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clusterdb",
        description="Inspect and check the clusters of a clusterdb config file.",
    )
    verbose_help = "log to stderr: -v state changes (INFO), -vv every attempt (DEBUG)"
    parser.add_argument("-v", "--verbose", action="count", default=0, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        # Also after the command (`status -v`); SUPPRESS keeps a top-level -v when absent here.
        p.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=verbose_help
        )
        p.add_argument("-c", "--config", metavar="FILE", help="TOML config ($CLUSTERDB_CONFIG)")
        p.add_argument(
            "--timeout",
            type=_timeout,
            default=DEFAULT_TIMEOUT,
            metavar="S",
            help=f"bound on the probes and connects, seconds (default {DEFAULT_TIMEOUT:g})",
        )
        p.add_argument("clusters", nargs="*", metavar="CLUSTER", help="only these clusters")

    status = sub.add_parser(
        "status",
        help="probe every node once and show one row per node",
        description="Probe every node once (a fresh process knows nothing), then print one "
        "row per node: state, role, latency, lag, counters, last error and ages.",
    )
    common(status)
    status.add_argument("--json", action="store_true", help="{cluster: ClusterStats} as JSON")
    status.add_argument(
        "--watch", type=_timeout, metavar="SECONDS", help="re-probe and redraw until Ctrl-C"
    )
    status.set_defaults(func=cmd_status)

    check = sub.add_parser(
        "check",
        help="exit 0 when every cluster has a reachable primary, 1 otherwise",
        description="Probe every node, then connect(role='primary') to each cluster. Exit 0 "
        "when every cluster has a reachable primary, 1 otherwise (reason printed), 2 on a "
        "usage or config error.",
    )
    common(check)
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser(
        "demo", help="narrated failover demo on a throwaway local PostgreSQL cluster"
    )
    demo.add_argument("--fast", action="store_true", help="short steps (for tests)")
    demo.set_defaults(func=cmd_demo)
    return parser


class _ScrubbingFormatter(logging.Formatter):
    """Log lines (and tracebacks) with every known secret masked."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._redactor = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.scrub(super().format(record))


def _setup_logging(verbose: int, secrets: Iterable[str] = ()) -> None:
    if verbose <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(_ScrubbingFormatter(fmt, secrets))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; return the exit status. The logging set up for ``-v`` is undone on return,
    so that main() called again in one process does not log each line twice."""
    stream = out if out is not None else sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers, level = list(log.handlers), log.level
    try:
        result: int = args.func(args, stream)
        return result
    except UsageError as exc:
        print(f"clusterdb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # `status | head`: the reader went away; not an error worth a traceback.
        return EXIT_OK
    finally:
        _quiesce(getattr(args, "timeout", DEFAULT_TIMEOUT) + 1.0)
        log.handlers[:] = handlers
        log.setLevel(level)


def _quiesce(timeout: float) -> None:
    """Stop the monitor and let clusterdb's probe and connect threads end (bounded).

    A thread still inside a driver call while the interpreter finalizes can crash the
    process, which would turn check's exit status 1 into -11.
    """
    try:
        clusterdb.close(timeout)
    except Exception as exc:  # closing must not mask the command's own outcome
        log.debug("clusterdb.close() failed: %s", exc)
