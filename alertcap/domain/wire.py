"""How frozen dataclasses cross Durable boundaries: as plain JSON dicts.

`to_dict()` on the way out, `from_dict()` on the way in. `from_dict` ignores keys it does
not know and fills missing ones from defaults, so a field can be added without breaking
instances already in flight (old histories replay with the old dicts). Two escapes keep
the wire stable while the Python side improves:

- a field's JSON key can differ from its name (`field(metadata=json_key("vm_id"))`);
- a value class with `to_wire()` / `from_wire()` travels as a scalar (a parsed VM id
  travels as its id string, as it always has).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Self, Union


def json_key(name: str) -> dict[str, str]:
    return {"json": name}


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json", f.name))


class Model:
    """Mixin for frozen dataclasses: plain-dict round trip, nested models included."""

    def to_dict(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], _encode(self))

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        hints = _hints(typing.cast(type, cls))
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = _key(f)
            if key in data:
                kwargs[f.name] = _decode(hints[f.name], data[key])
        return cls(**kwargs)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any) -> Any:
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_key(f): _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_decode(item, v) for v in value)
    if isinstance(hint, type) and hasattr(hint, "from_wire"):
        return value if isinstance(value, hint) else hint.from_wire(value)
    if isinstance(hint, type) and issubclass(hint, Model):
        return hint.from_dict(value)
    return value
