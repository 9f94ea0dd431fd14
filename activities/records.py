"""Run records: every finished run's result, kept in a blob container so that it outlives
its Durable instance (the instance id derives from the VM, so the VM's next run replaces
the instance and its history).

    <container>/<instance id>/<run started at>.json     the RunResult, as the output says

Writing is idempotent (same run, same blob), so an activity re-run after a crash is
harmless. Reading (the run list, the run page, a re-sent notification) goes through
`list_records` and `read_record`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from activities.spec import activity
from alertcap.domain.run import RunResult
from alertcap.domain.wire import Model
from alertcap.sdk.clients import Clients
from alertcap.sdk.errors import from_azure


def record_name(instance_id: str, started_at: str) -> str:
    return f"{instance_id}/{started_at.replace(':', '-')}.json"


@dataclass(frozen=True)
class RecordRef(Model):
    location: str


@activity("save_run", max_attempts=3)
def save_run(clients: Clients, result: RunResult) -> RecordRef:
    from azure.core.exceptions import ResourceExistsError

    container = clients.records()
    name = record_name(result.instance_id, result.started_at)
    body = json.dumps({**result.to_dict(), "record": name}, sort_keys=True).encode()
    try:
        with contextlib.suppress(ResourceExistsError):  # made by the first run
            container.create_container()
        container.upload_blob(name, body, overwrite=True,
                              content_settings=_json_content())
    except Exception as exc:
        raise from_azure(exc, "keep the run record") from exc
    return RecordRef(name)


def _json_content() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")


def list_records(clients: Clients, prefix: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """The newest records first (by run start), at most `limit`, read whole."""
    container = clients.records()
    names = sorted((b.name for b in container.list_blobs(name_starts_with=prefix or None)),
                   key=lambda n: n.rsplit("/", 1)[-1], reverse=True)[:limit]
    return [read_record(clients, n) for n in names]


def read_record(clients: Clients, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(clients.records().download_blob(name).readall())
    return data
