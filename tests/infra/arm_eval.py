"""A small evaluator of ARM template expressions, enough to expand infra/azuredeploy.json.

No Azure service evaluates a template here, so the role assignments a deployment would make
for given parameters are computed by this module: conditions, copy loops, nested
deployments (their subscription/resource group scope and parameters) and the expression
functions the template uses. Functions it does not know raise, so the template cannot
silently grow past what the tests understand. Semantics follow the ARM template function
reference (lazy `if`; `union` keeps the first of equal items; `guid` is a deterministic
hash of its arguments, case-sensitive). `reference()` and `listKeys()` answer stand-in
values: the tests look at names and scopes, not at runtime properties.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][\w]*)"
                    r"|(?P<punct>[(),.\[\]]))")


class Lambda:
    def __init__(self, names: list[str], body: Any, ctx: Context) -> None:
        self.names, self.body, self.ctx = names, body, ctx

    def __call__(self, *args: Any) -> Any:
        return self.ctx.with_lambda(dict(zip(self.names, args, strict=True))).eval_node(self.body)


def _parse(text: str) -> Any:
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in _TOKEN.finditer(text)]
    assert "".join(v for _, v in tokens).replace(" ", "") == text.replace(" ", ""), text
    pos = 0

    def peek() -> tuple[str | None, str | None]:
        return tokens[pos] if pos < len(tokens) else (None, None)

    def expr() -> Any:
        nonlocal pos
        kind, value = tokens[pos]
        pos += 1
        if kind == "str":
            node: Any = ("lit", value[1:-1].replace("''", "'"))
        elif kind == "num":
            node = ("lit", int(value))
        elif kind == "name":
            assert tokens[pos][1] == "(", text
            pos += 1
            args = []
            while peek()[1] != ")":
                args.append(expr())
                if peek()[1] == ",":
                    pos += 1
            pos += 1
            node = ("call", value, args)
        else:
            raise ValueError(f"unexpected {value!r} in {text}")
        while peek()[1] in (".", "["):
            if tokens[pos][1] == ".":
                node = ("prop", node, tokens[pos + 1][1])
                pos += 2
            else:
                pos += 1
                index = expr()
                assert tokens[pos][1] == "]"
                pos += 1
                node = ("index", node, index)
        return node

    node = expr()
    assert pos == len(tokens), text
    return node


def _guid(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def _union(*arrays: Any) -> Any:
    if isinstance(arrays[0], dict):
        out: dict[str, Any] = {}
        for a in arrays:
            out.update(a)
        return out
    items: list[Any] = []
    for a in arrays:
        for item in a:
            if item not in items:
                items.append(item)
    return items


def _format(fmt: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)\}", lambda m: _str(args[int(m.group(1))]), fmt)


def _str(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@dataclass
class Context:
    template: dict[str, Any]
    params: dict[str, Any]
    subscription_id: str
    resource_group: str | None  # None: a subscription-scope deployment
    tenant_id: str = "00000000-0000-0000-0000-0000000000aa"
    copy_index: int | None = None
    lambdas: dict[str, Any] = field(default_factory=dict)
    _vars: dict[str, Any] = field(default_factory=dict)

    # ---- scope helpers -------------------------------------------------------------
    @property
    def rg_id(self) -> str:
        assert self.resource_group is not None
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def with_copy(self, i: int) -> Context:
        return Context(self.template, self.params, self.subscription_id, self.resource_group,
                       self.tenant_id, i, self.lambdas, self._vars)

    def with_lambda(self, names: dict[str, Any]) -> Context:
        return Context(self.template, self.params, self.subscription_id, self.resource_group,
                       self.tenant_id, self.copy_index, {**self.lambdas, **names}, self._vars)

    # ---- evaluation ----------------------------------------------------------------
    def value(self, v: Any) -> Any:
        """A template value: strings in [brackets] are expressions; containers recurse."""
        if isinstance(v, str):
            if v.startswith("[") and not v.startswith("[[") and v.endswith("]"):
                return self.eval_node(_parse(v[1:-1]))
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def variable(self, name: str) -> Any:
        if name not in self._vars:
            self._vars[name] = self.value(self.template["variables"][name])
        return self._vars[name]

    def parameter(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        spec = self.template["parameters"][name]
        if "defaultValue" not in spec:
            raise KeyError(f"parameter {name} is required")
        self.params[name] = self.value(spec["defaultValue"])
        return self.params[name]

    def eval_node(self, node: Any) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "prop":
            base = self.eval_node(node[1])
            return base[node[2]]
        if kind == "index":
            return self.eval_node(node[1])[self.eval_node(node[2])]
        name, args = node[1], node[2]
        lname = name.lower()
        if lname == "if":  # lazy, like ARM: only the chosen branch is evaluated
            return self.eval_node(args[1] if self.eval_node(args[0]) else args[2])
        if lname == "lambda":
            names = [self.eval_node(a) for a in args[:-1]]
            return Lambda(names, args[-1], self)
        values = [self.eval_node(a) for a in args]
        fn = self._functions().get(lname)
        if fn is None:
            raise NotImplementedError(f"ARM function {name}() is not known to tests/infra/arm_eval.py")
        return fn(*values)

    def _resource_id(self, *parts: str) -> str:
        # resourceId([subscriptionId], [resourceGroupName], type, name1, name2...)
        type_index = next(i for i, p in enumerate(parts) if "/" in p)
        scope = parts[:type_index]
        sub = scope[0] if len(scope) == 2 else self.subscription_id
        rg = scope[-1] if scope else self.resource_group
        rtype, names = parts[type_index], parts[type_index + 1:]
        segments = rtype.split("/")
        path = f"{segments[0]}/{segments[1]}/{names[0]}"
        for seg, n in zip(segments[2:], names[1:], strict=True):
            path += f"/{seg}/{n}"
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{path}"

    def _functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "parameters": self.parameter,
            "variables": self.variable,
            "lambdavariables": lambda n: self.lambdas[n],
            "copyindex": lambda offset=0: (self.copy_index or 0) + offset,
            "subscription": lambda: {"id": f"/subscriptions/{self.subscription_id}",
                                     "subscriptionId": self.subscription_id,
                                     "tenantId": self.tenant_id},
            "resourcegroup": lambda: {"id": self.rg_id, "name": self.resource_group,
                                      "location": "westeurope"},
            "tenant": lambda: {"tenantId": self.tenant_id},
            "environment": lambda: {"resourceManager": "https://management.azure.com/",
                                    "authentication": {
                                        "loginEndpoint": "https://login.microsoftonline.com/"}},
            "resourceid": self._resource_id,
            "subscriptionresourceid": lambda rtype, *names: (
                f"/subscriptions/{self.subscription_id}/providers/{rtype}/{'/'.join(names)}"),
            "reference": lambda rid, *_: {"principalId": _guid("principal", rid),
                                          "clientId": _guid("client", rid),
                                          "defaultHostName": "app.azurewebsites.net",
                                          "endpoint": "https://dts.example.durabletask.io",
                                          "ConnectionString": "InstrumentationKey=stand-in"},
            "listkeys": lambda rid, _v: {"functionKeys": {"default": "stand-in-key"}},
            "guid": _guid,
            "uniquestring": lambda *parts: _guid(*parts).replace("-", "")[:13],
            "concat": lambda *a: ([y for x in a for y in x] if isinstance(a[0], list)
                                  else "".join(_str(x) for x in a)),
            "format": _format,
            "union": _union,
            "tolower": lambda s: s.lower(),
            "split": lambda s, sep: s.split(sep),
            "take": lambda s, n: s[:n],
            "substring": lambda s, i, n: s[i:i + n],
            "contains": lambda c, x: x in c,
            "empty": lambda x: len(x) == 0,
            "length": len,
            "range": lambda start, count: list(range(start, start + count)),
            "map": lambda arr, f: [f(x) for x in arr],
            "filter": lambda arr, f: [x for x in arr if f(x)],
            "not": lambda x: not x,
            "and": lambda *x: all(x),
            "or": lambda *x: any(x),
            "equals": lambda a, b: a == b,
            "string": _str,
            "true": lambda: True,
            "false": lambda: False,
            "createarray": lambda *a: list(a),
            "createobject": lambda *a: dict(zip(a[::2], a[1::2], strict=True)),
            "uricomponent": lambda s: s,
        }


@dataclass(frozen=True)
class Assignment:
    name: str
    scope: str
    role_definition_id: str
    principal_id: str


@dataclass
class Expansion:
    assignments: list[Assignment] = field(default_factory=list)
    role_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> props
    resources: list[tuple[str, str]] = field(default_factory=list)  # (type, name) deployed


def _instances(ctx: Context, resource: dict[str, Any]) -> list[Context]:
    if "copy" in resource:
        count = ctx.value(resource["copy"]["count"])
        contexts = [ctx.with_copy(i) for i in range(count)]
    else:
        contexts = [ctx]
    return [c for c in contexts if "condition" not in resource or c.value(resource["condition"])]


def expand(template: dict[str, Any], params: dict[str, Any], subscription_id: str,
           resource_group: str | None, out: Expansion | None = None) -> Expansion:
    out = out or Expansion()
    ctx = Context(template, dict(params), subscription_id, resource_group)
    for resource in template["resources"]:
        for c in _instances(ctx, resource):
            rtype = resource["type"]
            name = c.value(resource["name"])
            out.resources.append((rtype, name))
            if rtype == "Microsoft.Resources/deployments":
                sub = c.value(resource.get("subscriptionId", subscription_id))
                rg = c.value(resource["resourceGroup"]) if "resourceGroup" in resource else (
                    None if "subscriptionId" in resource else resource_group)
                inner_params = {k: c.value(v["value"])
                                for k, v in resource["properties"]["parameters"].items()}
                expand(resource["properties"]["template"], inner_params, sub, rg, out)
            elif rtype == "Microsoft.Authorization/roleAssignments":
                props = c.value(resource["properties"])
                if "scope" in resource:  # an extension resource: "<type>/<name>" in this group
                    parts = c.value(resource["scope"]).split("/")
                    scope = c._resource_id(f"{parts[0]}/{parts[1]}", *parts[2::2]) if len(
                        parts) == 3 else c._resource_id(f"{parts[0]}/{parts[1]}/{parts[3]}",
                                                        parts[2], parts[4])
                elif resource_group is None:
                    scope = f"/subscriptions/{subscription_id}"
                else:
                    scope = c.rg_id
                out.assignments.append(Assignment(name, scope, props["roleDefinitionId"],
                                                  props["principalId"]))
            elif rtype == "Microsoft.Authorization/roleDefinitions":
                rid = f"/subscriptions/{subscription_id}/providers/{rtype}/{name}"
                out.role_definitions[rid] = c.value(resource["properties"])
    return out


def variables(template: dict[str, Any], params: dict[str, Any], subscription_id: str,
              resource_group: str) -> Context:
    return Context(template, dict(params), subscription_id, resource_group)
