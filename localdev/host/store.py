"""SQLite persistence for orchestration instances, their history and their work queues.

Boundary: all SQL lives here. The engine calls these methods from the event-loop thread
(one connection, WAL, synchronous=NORMAL: a commit survives `kill -9` of the host; only
an OS crash could lose the last commits). Each engine step is one transaction (`tx()`),
so a crash leaves either the whole step or none of it.

Tables: `instances` (one row per instance, status and bookkeeping), `history` (the
events the orchestrator replays), `inbox` (messages not yet applied: ExecutionStarted,
TaskCompleted/Failed, TimerFired with its due time, EventRaised, sub-orchestration
results), `activities` (scheduled activity work items; deleted when the result is in the
inbox, so a crash mid-activity runs it again: at-least-once, as in Azure).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id    TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    input          TEXT,
    output         TEXT,
    custom_status  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    execution_id   TEXT NOT NULL,
    parent_id      TEXT,
    parent_task_id INTEGER,
    engine_state   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_at);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    event       TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    visible_at  REAL NOT NULL,
    event       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id, priority, id);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox(visible_at);
CREATE TABLE IF NOT EXISTS activities (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    input        TEXT
);
CREATE INDEX IF NOT EXISTS activities_instance ON activities(instance_id);
"""

ACTIVE = ("Pending", "Running", "Suspended", "ContinuedAsNew")
FINISHED = ("Completed", "Failed", "Terminated", "Canceled")


@dataclass
class Instance:
    instance_id: str
    name: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_at: str
    updated_at: str
    execution_id: str
    parent_id: str | None
    parent_task_id: int | None
    engine_state: dict[str, Any]


@dataclass
class Message:
    id: int
    instance_id: str
    event: dict[str, Any]


@dataclass
class ActivityItem:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """One atomic step; nested use joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # --- instances ---------------------------------------------------------------------

    @staticmethod
    def _instance(row: sqlite3.Row | tuple[Any, ...]) -> Instance:
        values = list(row)
        values[-1] = json.loads(values[-1])
        return Instance(*values)

    _COLS = (
        "instance_id, name, status, input, output, custom_status, created_at, updated_at, "
        "execution_id, parent_id, parent_task_id, engine_state"
    )

    def get_instance(self, instance_id: str) -> Instance | None:
        row = self.db.execute(
            f"SELECT {self._COLS} FROM instances WHERE instance_id = ?",  # noqa: S608
            (instance_id,),
        ).fetchone()
        return self._instance(row) if row else None

    def put_instance(self, inst: Instance) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO instances ({self._COLS}) "  # noqa: S608
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                inst.instance_id,
                inst.name,
                inst.status,
                inst.input,
                inst.output,
                inst.custom_status,
                inst.created_at,
                inst.updated_at,
                inst.execution_id,
                inst.parent_id,
                inst.parent_task_id,
                json.dumps(inst.engine_state),
            ),
        )

    def query_instances(
        self,
        *,
        statuses: list[str] | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        prefix: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Instance]:
        where, args = self._filters(statuses, created_from, created_to, prefix)
        sql = f"SELECT {self._COLS} FROM instances {where} ORDER BY created_at, instance_id"  # noqa: S608
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        return [self._instance(r) for r in self.db.execute(sql, args)]

    @staticmethod
    def _filters(
        statuses: list[str] | None,
        created_from: str | None,
        created_to: str | None,
        prefix: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if created_from:
            clauses.append("created_at >= ?")
            args.append(created_from)
        if created_to:
            clauses.append("created_at <= ?")
            args.append(created_to)
        if prefix:
            # GLOB is case-sensitive like instance ids; escape its metacharacters.
            escaped = "".join(f"[{c}]" if c in "*?[]" else c for c in prefix)
            clauses.append("instance_id GLOB ?")
            args.append(escaped + "*")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    def delete_instance(self, instance_id: str) -> None:
        for table in ("instances", "history", "inbox", "activities"):
            self.db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))  # noqa: S608

    # --- history -----------------------------------------------------------------------

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        )
        return [json.loads(r[0]) for r in rows]

    def append_history(self, instance_id: str, events: list[dict[str, Any]]) -> None:
        row = self.db.execute(
            "SELECT COALESCE(MAX(seq), -1) FROM history WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        start = int(row[0]) + 1
        self.db.executemany(
            "INSERT INTO history (instance_id, seq, event) VALUES (?,?,?)",
            [(instance_id, start + i, json.dumps(e)) for i, e in enumerate(events)],
        )

    def replace_history(self, instance_id: str, events: list[dict[str, Any]]) -> None:
        self.db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        self.append_history(instance_id, events)

    # --- inbox -------------------------------------------------------------------------

    def send(self, instance_id: str, event: dict[str, Any], visible_at: float = 0.0) -> None:
        # ExecutionStarted goes before anything already waiting (events raised early).
        priority = 0 if event.get("EventType") == 0 else 1
        self.db.execute(
            "INSERT INTO inbox (instance_id, priority, visible_at, event) VALUES (?,?,?,?)",
            (instance_id, priority, visible_at, json.dumps(event)),
        )

    def ready_instances(self, now: float, exclude: set[str], limit: int) -> list[str]:
        # A suspended instance takes only termination (DTFx defers everything else).
        rows = self.db.execute(
            "SELECT i.instance_id FROM inbox i JOIN instances s USING (instance_id) "
            "WHERE i.visible_at <= ? AND (s.status != 'Suspended' "
            "OR json_extract(i.event, '$.EventType') = 3) "
            "GROUP BY i.instance_id ORDER BY MIN(i.id) LIMIT ?",
            (now, limit + len(exclude)),
        )
        return [r[0] for r in rows if r[0] not in exclude][:limit]

    def orphan_messages(self) -> None:
        """Drop messages for instances that no longer exist (purged)."""
        self.db.execute(
            "DELETE FROM inbox WHERE instance_id NOT IN (SELECT instance_id FROM instances)"
        )

    def next_due(self, now: float) -> float | None:
        row = self.db.execute(
            "SELECT MIN(visible_at) FROM inbox WHERE visible_at > ?", (now,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def first_message(
        self, instance_id: str, now: float, only_terminate: bool = False
    ) -> Message | None:
        extra = " AND json_extract(event, '$.EventType') = 3" if only_terminate else ""
        sql = (
            "SELECT id, instance_id, event FROM inbox WHERE instance_id = ? AND visible_at <= ?"  # noqa: S608
            f"{extra} ORDER BY priority, id LIMIT 1"
        )
        row = self.db.execute(
            sql,
            (instance_id, now),
        ).fetchone()
        return Message(row[0], row[1], json.loads(row[2])) if row else None

    def defer_message(self, message_id: int, event: dict[str, Any], visible_at: float) -> None:
        self.db.execute(
            "UPDATE inbox SET event = ?, visible_at = ? WHERE id = ?",
            (json.dumps(event), visible_at, message_id),
        )

    def delete_message(self, message_id: int) -> None:
        self.db.execute("DELETE FROM inbox WHERE id = ?", (message_id,))

    def delete_inbox(self, instance_id: str, keep_starts: bool = False) -> None:
        # keep_starts: a start message another client sent stays (it may win later).
        extra = " AND priority != 0" if keep_starts else ""
        self.db.execute("DELETE FROM inbox WHERE instance_id = ?" + extra, (instance_id,))  # noqa: S608

    def delete_messages(self, instance_id: str, event_types: tuple[int, ...]) -> None:
        for message_id, event in self.db.execute(
            "SELECT id, event FROM inbox WHERE instance_id = ?", (instance_id,)
        ).fetchall():
            if json.loads(event).get("EventType") in event_types:
                self.delete_message(message_id)

    def delete_timer(self, instance_id: str, timer_id: int) -> None:
        for message_id, event in self.db.execute(
            "SELECT id, event FROM inbox WHERE instance_id = ?", (instance_id,)
        ).fetchall():
            data = json.loads(event)
            if data.get("EventType") == 11 and data.get("TimerId") == timer_id:
                self.delete_message(message_id)

    # --- activities --------------------------------------------------------------------

    def add_activity(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_: str | None
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO activities (instance_id, execution_id, task_id, name, input) "
            "VALUES (?,?,?,?,?)",
            (instance_id, execution_id, task_id, name, input_),
        )
        return int(cur.lastrowid or 0)

    def get_activity(self, item_id: int) -> ActivityItem | None:
        row = self.db.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input FROM activities "
            "WHERE id = ?",
            (item_id,),
        ).fetchone()
        return ActivityItem(*row) if row else None

    def all_activities(self) -> list[ActivityItem]:
        rows = self.db.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input FROM activities ORDER BY id"
        )
        return [ActivityItem(*r) for r in rows]

    def delete_activity(self, item_id: int) -> bool:
        cur = self.db.execute("DELETE FROM activities WHERE id = ?", (item_id,))
        return cur.rowcount > 0

    def delete_activities(self, instance_id: str) -> None:
        self.db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
