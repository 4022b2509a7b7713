"""``python -m clusterdb demo``: a narrated failover on a throwaway local PostgreSQL cluster.

Starts a primary and two replicas with :mod:`clusterdb.testing`, registers them as cluster
``demo`` and runs a small workload (about 10 connects a second from three threads: one asking
for the primary, one for ``prefer-replica``, one for any node). Each connect asks the server
which node it reached. Then, step by step: a replica hangs, the primary is killed, a replica is
promoted, and everything is brought back, while a live table shows where connects land and how
the per-node stats move.

On a terminal the table redraws in place; otherwise (CI, a pipe) it prints plain lines. The
servers are stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import clusterdb
from clusterdb.core.description import WantedRole
from clusterdb.tools import report

if TYPE_CHECKING:
    from clusterdb.testing import Cluster, TestNode

__all__ = ["run"]

CLUSTER = "demo"
ROLES: tuple[WantedRole, ...] = ("primary", "prefer-replica", "any")
# The status table's columns that tell this story, narrow enough for a common terminal.
COLUMNS = (
    "NODE",
    "STATE",
    "ROLE",
    "LAT_MS",
    "CONNECTS",
    "ERRORS",
    "LAST_OK",
    "LAST_ERR",
    "LAST_ERROR",
)
RATE = 10.0
"""Connects per second, all workload threads together."""


@dataclass
class Tally:
    """Outcomes of the workload since the current step began (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reached: dict[str, Counter[str]] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)
    """Longest connect() call of the step per role, seconds (successful or not)."""
    total_ok: Counter[str] = field(default_factory=Counter)
    total_failed: Counter[str] = field(default_factory=Counter)

    def _took(self, role: str, seconds: float) -> None:
        self.slowest[role] = max(self.slowest.get(role, 0.0), seconds)

    def ok(self, role: str, node: str, seconds: float) -> None:
        with self.lock:
            self.reached.setdefault(role, Counter())[node] += 1
            self.total_ok[role] += 1
            self._took(role, seconds)

    def fail(self, role: str, error: str, seconds: float) -> None:
        with self.lock:
            self.failed[role] += 1
            self.total_failed[role] += 1
            self.first_error.setdefault(role, error)
            self._took(role, seconds)

    def new_step(self) -> None:
        with self.lock:
            self.reached.clear()
            self.failed.clear()
            self.first_error.clear()
            self.slowest.clear()

    def slowest_line(self) -> str:
        with self.lock:
            return ", ".join(
                f"{role} {self.slowest[role] * 1000:.0f} ms"
                for role in ROLES
                if role in self.slowest
            )

    def line(self) -> str:
        with self.lock:
            parts = []
            for role in ROLES:
                nodes = self.reached.get(role, Counter())
                where = " ".join(f"{n}:{c}" for n, c in sorted(nodes.items())) or "-"
                failed = f" FAILED:{self.failed[role]}" if self.failed[role] else ""
                parts.append(f"{role}: {where}{failed}")
            return " | ".join(parts)


class _LogTap(logging.Handler):
    """Keeps clusterdb's INFO+ log lines so the narration can show them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.INFO)
        # A minute of state changes: a few dozen lines, kept whole so readers can slice.
        self.lines: list[str] = []
        self._secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            text = report.collapse_whitespace(
                report.mask_secrets(record.getMessage(), self._secrets)
            )
            self.lines.append(f"{record.levelname.lower()}: {text}")


class Screen:
    """Narration plus a live block.

    On a terminal the live block (where connects went, the stats table) is redrawn in place
    below the narration, which scrolls on as history. Elsewhere (CI, a pipe) every update is
    a plain appended line and the table is printed once at the end of each step.
    """

    def __init__(self, out: TextIO, secrets: list[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self.secrets = secrets
        self._live = 0
        """Lines of the live block on screen, to erase before the next redraw."""

    def _erase_live(self) -> None:
        if self._live:
            # Cursor up to the block's first line, then clear to the end of the screen.
            self.out.write(f"\x1b[{self._live}F\x1b[J")
            self._live = 0

    def say(self, text: str) -> None:
        """A permanent line (narration, an event)."""
        self._erase_live()
        self.out.write(report.mask_secrets(text, self.secrets) + "\n")
        self.out.flush()

    def keep_live(self) -> None:
        """Leave the current live block on screen as history."""
        self._live = 0

    def stats_table(self) -> str:
        stats = {CLUSTER: clusterdb.stats.snapshot(CLUSTER)}
        return report.render_status(
            stats, datetime.now(UTC), error_width=56, secrets=self.secrets, columns=COLUMNS
        )

    def tick(self, elapsed: float, tally: Tally, logs: list[str]) -> None:
        for line in logs:
            self.say(f"  clusterdb {line}")
        live = f"  [{elapsed:4.1f}s] reached  {tally.line()}"
        if not self.tty:
            self.say(live)
            return
        width = max(40, shutil.get_terminal_size().columns - 1)
        # Cut to the terminal's width: a wrapped line would throw off the cursor-up count.
        block = [
            report.truncate(report.mask_secrets(line, self.secrets), width)
            for line in [live, "", *self.stats_table().splitlines()]
        ]
        self._erase_live()
        self.out.write("\n".join(block) + "\n")
        self.out.flush()
        self._live = len(block)


class _Workload:
    """Worker threads connecting at a steady pace; each asks the server who it is."""

    def __init__(self, whoami: str, tally: Tally, timeout: float) -> None:
        self._whoami = whoami
        self._tally = tally
        self._timeout = timeout
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(role,), name=f"demo-{role}", daemon=True)
            for role in ROLES
        ]

    def _once(self, role: WantedRole) -> None:
        started = time.monotonic()
        try:
            conn: Any = clusterdb.connect(CLUSTER, role=role, connect_timeout=self._timeout)
        except Exception as exc:
            took = time.monotonic() - started
            self._tally.fail(
                role, f"{type(exc).__name__}: {report.collapse_whitespace(str(exc))}", took
            )
            return
        took = time.monotonic() - started
        try:
            cur = conn.cursor()
            cur.execute(self._whoami)
            row = cur.fetchone()
            self._tally.ok(role, str(row[0]) if row else "?", took)
        except Exception as exc:  # the node died between connect and query
            error = f"query: {type(exc).__name__}: {report.collapse_whitespace(str(exc))}"
            self._tally.fail(role, error, took)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _loop(self, role: WantedRole) -> None:
        interval = len(ROLES) / RATE
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._once(role)
            next_at = max(next_at + interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout + 2.0)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind the main thread so that the finally blocks stop the servers.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(fast: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; return the exit status (0 when it ran to the end)."""
    stream = out if out is not None else sys.stdout
    try:
        with _sigterm_unwinds():
            return _run(fast, stream)
    except KeyboardInterrupt:
        stream.write("\ninterrupted: servers stopped\n")
        return 130


def _run(fast: bool, out: TextIO) -> int:  # noqa: PLR0915  (to split)
    try:
        from clusterdb.testing import PostgresCluster
    except ImportError as exc:
        out.write(f"the demo needs clusterdb.testing: {exc}\n")
        return 1

    step_s = 2.5 if fast else 6.0
    timeout = 1.0 if fast else 2.0
    heartbeat = 0.5 if fast else 1.0
    screen = Screen(out, [])
    screen.say(
        "clusterdb demo: a PostgreSQL primary and two replicas on this machine, "
        f"five steps, about {5 * step_s + 5:.0f} s"
    )
    screen.say("starting the servers (one initdb, copied for each node; about a second)...")
    started = time.monotonic()
    cluster = PostgresCluster(replicas=2)
    logger = logging.getLogger("clusterdb")
    level = logger.level
    tap: _LogTap | None = None
    workload: _Workload | None = None
    try:
        try:
            cluster.start()
        except Exception as exc:
            screen.say(f"could not start the PostgreSQL servers: {exc}")
            screen.say("install the PostgreSQL server packages (make servers) and try again")
            return 1
        screen.secrets.append(str(cluster.password))
        screen.say(f"servers up in {time.monotonic() - started:.1f}s: " + _topology(cluster))
        clusterdb.register(
            CLUSTER,
            **cluster.register_kwargs(),
            connect_timeout=timeout,
            heartbeat=heartbeat,
        )
        tap = _LogTap(screen.secrets)
        logger.addHandler(tap)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        tally = Tally()
        workload = _Workload(str(cluster.WHOAMI_SQL), tally, timeout)
        workload.start()

        def step(title: str, explain: str, action: Callable[[], object] | None = None) -> None:
            screen.say("")
            screen.say(f"== {title}")
            screen.say(f"   {explain}")
            # Count from here: what the action itself disturbs belongs to this step.
            tally.new_step()
            if action is not None:
                try:
                    action()
                except Exception as exc:  # keep narrating: the demo shows, it does not test
                    screen.say(f"   (could not do that: {type(exc).__name__}: {exc})")
            _watch(screen, tally, tap, step_s)
            # On a terminal the last live block stays as this step's picture.
            screen.keep_live()
            if not screen.tty:
                screen.say(screen.stats_table())
            with tally.lock:
                errors = dict(tally.first_error)
            screen.say(f"   slowest connect() per role: {tally.slowest_line() or '-'}")
            for role, error in errors.items():
                screen.say(
                    f"   first failure for role={role}: {report.truncate_middle(error, 200)}"
                )

        primary = cluster.primary
        hung, promoted = cluster.replicas[-1], cluster.replicas[0]

        step(
            "1. steady state",
            "three threads connect ~10 times a second: role='primary', 'prefer-replica', 'any'."
            " Each connect asks the server its name.",
        )
        step(
            f"2. {hung.name} hangs (accepts TCP, never answers)",
            "connect() hedges: after a short learned delay it tries the next node, so no call "
            "waits for the timeout; the hung node's latency estimate jumps and it stops being "
            "picked.",
            hung.hang,
        )
        step(
            f"3. the primary {primary.name} is killed",
            "reads keep succeeding on the replicas; role='primary' has nowhere to go and fails "
            "fast (AllNodesFailed / NoSuitableNode) until a replica is promoted.",
            primary.kill,
        )
        step(
            f"4. {promoted.name} is promoted to primary ({hung.name} wakes up and follows it)",
            "the monitor reads each node's role at every heartbeat: role='primary' follows the "
            "new primary within about a heartbeat plus a connect, and the woken node is probed "
            "back into rotation.",
            lambda: cluster.promote(promoted),
        )
        step(
            f"5. {primary.name} comes back, as a replica of {promoted.name}",
            "the monitor probes down nodes with backoff: once it answers it is back in "
            "rotation, now serving reads.",
            lambda: _bring_back(primary, hung),
        )
        screen.say("")
        screen.say("== done: " + _topology(cluster))
        for role in ROLES:
            ok, failed = tally.total_ok[role], tally.total_failed[role]
            screen.say(f"   role={role}: {ok} connects succeeded, {failed} failed")
        readers_failed = tally.total_failed["any"] + tally.total_failed["prefer-replica"]
        if readers_failed == 0:
            screen.say(
                "   'any' and 'prefer-replica' kept succeeding through every step; 'primary' "
                "could fail only while no primary existed."
            )
        else:
            screen.say(
                f"   {readers_failed} 'any'/'prefer-replica' connects failed: the machine may "
                "be too loaded for the timeouts (see the failures above)."
            )
        return 0
    finally:
        if workload is not None:
            workload.stop()
        if tap is not None:
            logger.removeHandler(tap)
        logger.setLevel(level)
        with contextlib.suppress(Exception):
            clusterdb.unregister(CLUSTER)
        with contextlib.suppress(Exception):
            clusterdb.close()
        cluster.stop()
        screen.say("servers stopped, temporary files removed")


def _topology(cluster: Cluster) -> str:
    with contextlib.suppress(Exception):
        replicas = ", ".join(n.name for n in cluster.replicas)
        return f"primary {cluster.primary.name}, replicas {replicas}"
    return "topology unknown"


def _bring_back(old_primary: TestNode, hung: TestNode) -> None:
    # promote() already woke the hung replica; resume again in case the promote step failed.
    if hung.hung:
        hung.resume()
    # After promote() the harness set the old primary up to start as a replica of the new
    # one: starting it is all "bringing it back" takes (heal() would rebuild the old shape).
    old_primary.start()


def _watch(screen: Screen, tally: Tally, tap: _LogTap, seconds: float) -> None:
    """Show the live line once a second for ``seconds``."""
    began = time.monotonic()
    seen = len(tap.lines)
    while True:
        time.sleep(min(1.0, max(0.0, began + seconds - time.monotonic())))
        elapsed = time.monotonic() - began
        lines = list(tap.lines)
        fresh = lines[seen:]
        seen = len(lines)
        screen.tick(elapsed, tally, fresh)
        if elapsed >= seconds - 0.05:
            return
