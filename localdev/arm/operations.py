"""Long-running operations as ARM exposes them to the SDK's pollers.

Boundary: an in-memory table of operations. ``Azure-AsyncOperation`` URLs
(``.../locations/{loc}/operations/{id}``) answer 200 ``{"status": InProgress|Succeeded|
Failed, "error"?}``; ``Location`` URLs (``.../operationResults/{id}``) answer 202 while
running, then the final status code and body (what LocationPolling returns).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field


@dataclass
class Operation:
    id: str
    task: asyncio.Task | None = None
    status: str = "InProgress"
    error: dict | None = None
    final_status: int = 200
    final_body: object = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


MAX_OPERATIONS = 10000  # every queryStatus poll makes one; keep the newest


class Operations:
    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}  # insertion-ordered: oldest first

    def start(self, work: Awaitable[tuple[int, object]]) -> Operation:
        """Run WORK (returns final status code and body); failures become status Failed.

        WORK raising ArmError-like objects (with code/message) gives that error.
        """
        op = Operation(secrets.token_hex(16))
        self._ops[op.id] = op
        while len(self._ops) > MAX_OPERATIONS:
            del self._ops[next(iter(self._ops))]

        async def run() -> None:
            try:
                op.final_status, op.final_body = await work
                op.status = "Succeeded"
            except Exception as exc:  # every failure must reach the poller as Failed
                op.status = "Failed"
                op.error = {
                    "code": getattr(exc, "code", "InternalServerError"),
                    "message": getattr(exc, "message", str(exc)),
                }
            finally:
                op.done.set()

        op.task = asyncio.get_running_loop().create_task(run())
        return op

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id)
