"""SQLAlchemy ORM sessions that send reads to replicas and writes to the primary.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/sqlalchemy_routing.py

``clusterdb.sqlalchemy.sessionmaker(cluster)`` is SQLAlchemy's ``sessionmaker`` over two
engines of the cluster (``primary`` and ``prefer-replica``), with a session class that picks
one per statement (SQLAlchemy's documented ``get_bind`` override): flushes, DML and
``with_for_update()`` go to the primary, other reads to a replica; after its own commit, a
session reads only from a replica that has applied it.
"""

from __future__ import annotations

import os

from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import clusterdb
import clusterdb.sqlalchemy


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = f"clusterdb_example_orm_{os.getpid()}"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


RECOVERY = text("SELECT pg_is_in_recovery()")


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)
    Session = clusterdb.sqlalchemy.sessionmaker(cluster, engine_kwargs={"pool_size": 2})
    primary, replica = Session.kw["clusterdb_engines"]
    Base.metadata.create_all(primary)
    try:
        with Session() as session:
            on = "a replica" if session.scalar(RECOVERY) else "the primary"
            print(f"orm: a read runs on {on}")
            session.add_all([Note(id=1, body="first"), Note(id=2, body="second")])
            session.commit()  # the flush and the commit on the primary
            bodies = session.scalars(select(Note.body).order_by(Note.id)).all()
            print(f"orm: after the commit the session reads {bodies} (never stale)")
            locked = session.scalars(select(Note).with_for_update()).all()
            print(f"orm: with_for_update() locked {len(locked)} rows on the primary")
            session.commit()
    finally:
        Base.metadata.drop_all(primary)
        primary.dispose()
        replica.dispose()
        clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
