"""DNS discovery's pure parts and its source over an injected resolver (issue 18): the ``dns``
option, SRV priorities, one node per address with the hostname kept for TLS."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import pytest

from clusterdb.config import cluster_from_kwargs
from clusterdb.config.dns import DnsName, SrvRecord, check_dns, entries_for, lowest_priority
from clusterdb.errors import ConfigError
from clusterdb.runtime import dns

ADDRESSES = {"a.test": ["10.0.0.1", "10.0.0.2"], "b.test": ["10.0.1.1"], "c.test": ["::1"]}
SRV = {
    "_pg._tcp.test": [
        SrvRecord(10, 5, 5433, "b.test"),
        SrvRecord(0, 1, 5432, "c.test"),
        SrvRecord(0, 9, 5432, "a.test"),
    ]
}


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("db.x:5432", (DnsName("db.x", 5432),)),
        (["db.x:1", "_pg._tcp.x."], (DnsName("db.x", 1), DnsName("_pg._tcp.x", None))),
        ("[::1]:5432", (DnsName("::1", 5432),)),
    ],
)
def test_check_dns(value: object, names: tuple[DnsName, ...]) -> None:
    assert check_dns(value, "dns") == names


@pytest.mark.parametrize("value", ["db.x", "db.x:0", "db.x:port", [], [""], 5, ["db:1", 2]])
def test_check_dns_refuses(value: object) -> None:
    with pytest.raises(ConfigError):
        check_dns(value, "dns")


def test_dns_option_and_exclusive_with_patroni() -> None:
    config = cluster_from_kwargs("c", sqlite3, [], {"dns": ["a.test:5432", "_pg._tcp.test"]})
    assert config.options.dns == ("a.test:5432", "_pg._tcp.test")
    with pytest.raises(ConfigError, match="only one of patroni, dns"):
        cluster_from_kwargs("c", sqlite3, [], {"dns": "a:1", "patroni": "http://x:1"})


def test_lowest_priority_heaviest_first() -> None:
    assert [r.target for r in lowest_priority(SRV["_pg._tcp.test"])] == ["a.test", "c.test"]
    assert lowest_priority([]) == []


def test_entries_keep_the_name_for_tls() -> None:
    (kept,) = entries_for("a.test", 5432, ["10.0.0.1", "10.0.0.1"], keep_name=True)
    assert (kept.name, kept.host, kept.params["hostaddr"]) == (
        "a.test[10.0.0.1]:5432",
        "a.test",
        "10.0.0.1",
    )
    (plain,) = entries_for("a.test", 5432, ["10.0.0.1"], keep_name=False)
    assert (plain.host, dict(plain.params)) == ("10.0.0.1", {})


def _resolver(fail: Sequence[str] = ()) -> dns.Resolver:
    def addresses(host: str) -> list[str]:
        if host in fail:
            raise OSError("no such name")
        return ADDRESSES[host]

    return dns.Resolver(addresses=addresses, srv=lambda name: SRV[name])


def test_source_resolves_a_and_srv_names() -> None:
    old = dns.use_resolver(_resolver())
    try:
        source = dns.DnsSource(check_dns(["b.test:6000", "_pg._tcp.test"], "dns"), True)
        view = source.fetch()
        assert view is not None
        assert [(n.host, n.port, n.params["hostaddr"]) for n in view.nodes] == [
            ("b.test", 6000, "10.0.1.1"),
            ("a.test", 5432, "10.0.0.1"),
            ("a.test", 5432, "10.0.0.2"),
            ("c.test", 5432, "::1"),
        ]
        dns.use_resolver(_resolver(fail=["a.test", "b.test", "c.test"]))
        assert source.fetch() is None  # nothing resolved: the caller keeps its list
        assert "no such name" in source.last_error
    finally:
        dns.use_resolver(old)


def test_register_resolves_once_and_reload_keeps_the_discovered_list() -> None:
    import clusterdb
    from clusterdb.runtime import process

    old = dns.use_resolver(_resolver())
    try:
        clusterdb.register("dnsu", driver=sqlite3, nodes=[], dns="a.test:5432", monitor=False)
        names = {"a.test[10.0.0.1]:5432", "a.test[10.0.0.2]:5432"}
        assert set(process.get("dnsu").node_names) == names
        config = cluster_from_kwargs("dnsu", sqlite3, [], {"dns": "b.test:1", "monitor": False})
        process.get("dnsu").reconfigure(config)
        assert set(process.get("dnsu").node_names) == names  # kept until the next poll
        assert process.get("dnsu").discover()  # the new name, polled
        assert set(process.get("dnsu").node_names) == {"b.test[10.0.1.1]:1"}
    finally:
        dns.use_resolver(old)
        clusterdb.unregister("dnsu")
