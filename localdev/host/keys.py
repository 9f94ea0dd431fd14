"""Host keys: generated once, kept in `<state-dir>/host-keys.json`, reused on restart.

Boundary: this module is the only one that reads or writes the keys file. Key values are
never logged; callers get a `HostKeys` object and ask it questions.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "host-keys.json"
SYSTEM_KEY_NAME = "durabletask_extension"


def _new_key() -> str:
    # Same alphabet and length class as the Functions host's generated keys.
    return secrets.token_urlsafe(40)


@dataclass(frozen=True)
class HostKeys:
    master_key: str
    function_keys: dict[str, str]
    system_keys: dict[str, str]
    path: Path

    @property
    def system_key(self) -> str:
        return self.system_keys[SYSTEM_KEY_NAME]

    def is_master(self, key: str | None) -> bool:
        return bool(key) and secrets.compare_digest(key or "", self.master_key)

    def is_function_key(self, key: str | None) -> bool:
        """A function key, or the master key (which opens every function)."""
        if not key:
            return False
        return self.is_master(key) or any(
            secrets.compare_digest(key, k) for k in self.function_keys.values()
        )

    def is_system_key(self, key: str | None) -> bool:
        """What the Durable webhooks accept: the extension's system key or the master key."""
        if not key:
            return False
        return self.is_master(key) or secrets.compare_digest(key, self.system_key)


def load_or_create(state_dir: Path) -> HostKeys:
    path = state_dir / KEYS_FILE
    data: dict[str, object] = {}
    if path.exists():
        data = json.loads(path.read_text())
    changed = False
    if not isinstance(data.get("masterKey"), str):
        data["masterKey"] = _new_key()
        changed = True
    for section, name in (("functionKeys", "default"), ("systemKeys", SYSTEM_KEY_NAME)):
        keys = data.get(section)
        if not isinstance(keys, dict) or not isinstance(keys.get(name), str):
            keys = dict(keys) if isinstance(keys, dict) else {}
            keys[name] = _new_key()
            data[section] = keys
            changed = True
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # Owner-only from the first byte: the file holds secrets.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    return HostKeys(
        master_key=str(data["masterKey"]),
        function_keys=_str_dict(data["functionKeys"]),
        system_keys=_str_dict(data["systemKeys"]),
        path=path,
    )


def _str_dict(value: object) -> dict[str, str]:
    assert isinstance(value, dict)
    return {str(k): str(v) for k, v in value.items()}
