"""Find every Azure SDK operation the app calls, by reading its source (AST), not by running it.

An operation is `<group>.<method>`: the group is what the receiver is (an SDK operations
group or client), the method what is called on it. Receivers are resolved by following
the code's own data flow inside each module:

- attribute chains: `….packet_captures.X(...)`, `….network_watchers.X(...)`,
  `clients.resources(sub).resources.X(...)`, `clients.email().X(...)`, `clients.blob(u).X(...)`;
- names assigned from such expressions (`ops = _captures(clients, w)`), including through a
  module-level function's return value, and function parameters fed by them at call sites
  (`_delete(ops, w, name)`), iterated to a fixed point;
- constructors and factories of the blob client (`BlobServiceClient(...)`,
  `BlobClient.from_blob_url(...)`).

A call whose method name exists only on an SDK class we use but whose receiver cannot be
resolved is reported too, so a new call written in a shape this scan does not follow fails
the test instead of slipping past it.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every module of the app packages that may call Azure: found recursively, not named, so a
# new activity file or a moved client module (alertcap/sdk/clients.py) is scanned too.
SCANNED_PACKAGES = ("activities", "alertcap")
SCANNED = sorted(p for pkg in SCANNED_PACKAGES for p in (ROOT / pkg).rglob("*.py")
                 if "__pycache__" not in p.parts)

# Attribute on an SDK management client -> operation group.
GROUP_ATTRIBUTES = {"packet_captures": "packet_captures", "network_watchers": "network_watchers"}
# Factory methods of alertcap.clients.Clients -> what they return.
CLIENT_FACTORIES = {"network": "network_client", "resources": "resource_client",
                    "email": "email", "blob": "blob", "records": "container",
                    # any container of the capture account (standby rings): its own group,
                    # for the role there is not the host account's (records)
                    "container": "capture_container"}
# Constructors / class factories -> what they return.
CONSTRUCTORS = {"BlobServiceClient": "blob_service", "BlobClient.from_blob_url": "blob",
                "ContainerClient.from_container_url": "container",
                "EmailClient": "email", "EmailClient.from_connection_string": "email",
                "NetworkManagementClient": "network_client",
                "ResourceManagementClient": "resource_client"}
# Methods that build a client locally, without a request: followed, never operations.
BLOB_FACTORIES = {"get_blob_client"}
# Groups whose calls are operations (the *_client groups only lead to them).
OPERATION_GROUPS = {"packet_captures", "network_watchers", "resources", "email", "blob",
                    "blob_service", "container", "capture_container"}


def sdk_method_names() -> set[str]:
    """Public methods of the SDK classes the app uses (from the installed packages)."""
    from azure.communication.email import EmailClient
    from azure.mgmt.network.operations import NetworkWatchersOperations, PacketCapturesOperations
    from azure.mgmt.resource.resources.operations import ResourcesOperations
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

    names: set[str] = set()
    for cls in (EmailClient, NetworkWatchersOperations, PacketCapturesOperations,
                ResourcesOperations, BlobClient, BlobServiceClient, ContainerClient):
        names |= {n for n, _ in inspect.getmembers(cls, callable) if not n.startswith("_")}
    return names


# Method names too common to flag when the receiver is unknown (dict.get, list, close, ...).
AMBIGUOUS = {"get", "list", "close", "result", "update", "delete", "exists", "from_connection_string",
             "from_blob_url", "send_request", "get_account_information"}


@dataclass(frozen=True)
class Call:
    operation: str
    path: str
    line: int


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Module:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.names: dict[str, str] = {}          # variable/parameter name -> group
        self.returns: dict[str, str] = {}        # module function name -> group it returns
        self.functions = {f.name: f for f in ast.walk(tree)
                          if isinstance(f, ast.FunctionDef)}

    def group(self, node: ast.AST | None) -> str | None:
        """What an expression is, or None when it is nothing we track."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr in GROUP_ATTRIBUTES:
                return GROUP_ATTRIBUTES[node.attr]
            if node.attr == "resources" and self.group(node.value) == "resource_client":
                return "resources"
            return None
        if isinstance(node, ast.Call):
            func = node.func
            dotted = _dotted(func)
            if dotted in CONSTRUCTORS:
                return CONSTRUCTORS[dotted]
            if isinstance(func, ast.Attribute) and func.attr in CLIENT_FACTORIES:
                owner = _dotted(func.value)
                if owner in ("clients", "self"):
                    return CLIENT_FACTORIES[func.attr]
            if isinstance(func, ast.Name) and func.id in self.returns:
                return self.returns[func.id]
            # ContainerClient/BlobServiceClient.get_blob_client builds a BlobClient locally
            # (no request): what it returns is a blob, like clients.blob(url).
            if isinstance(func, ast.Attribute) and func.attr in BLOB_FACTORIES \
                    and self.group(func.value) in ("container", "capture_container",
                                                   "blob_service"):
                return "blob"
        return None

    def resolve(self) -> None:
        changed = True
        while changed:
            changed = False

            def learn(name: str, group: str | None) -> None:
                nonlocal changed
                if group and self.names.get(name) != group:
                    self.names[name] = group
                    changed = True

            for node in ast.walk(self.tree):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            learn(target.id, self.group(node.value))
                elif isinstance(node, ast.FunctionDef):
                    for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return)):
                        g = self.group(ret.value)
                        if g and self.returns.get(node.name) != g:
                            self.returns[node.name] = g
                            changed = True
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    callee = self.functions.get(node.func.id)
                    if callee:  # a local helper: its parameters take the arguments' groups
                        params = [a.arg for a in callee.args.args]
                        for param, arg in zip(params, node.args, strict=False):
                            learn(param, self.group(arg))


def scan(paths: list[Path] | None = None) -> tuple[set[Call], set[Call]]:
    """(operations found, SDK-looking calls whose receiver could not be resolved)."""
    methods = sdk_method_names() - AMBIGUOUS
    found: set[Call] = set()
    unresolved: set[Call] = set()
    for path in paths or SCANNED:
        module = _Module(ast.parse(path.read_text(), str(path)))
        module.resolve()
        rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            group = module.group(node.func.value)
            if node.func.attr in BLOB_FACTORIES and group in OPERATION_GROUPS:
                continue
            if group in OPERATION_GROUPS:
                found.add(Call(f"{group}.{node.func.attr}", rel, node.lineno))
            elif node.func.attr in methods and _dotted(node.func) not in CONSTRUCTORS:
                unresolved.add(Call(f"?.{node.func.attr}", rel, node.lineno))
    return found, unresolved
