"""Read the two forms of the template: infra/azuredeploy.json (ARM JSON) and infra/main.bicep
with its modules. There is no Bicep compiler on this machine, so the .bicep files are read
structurally: declarations (`param`, `var`, `resource`, `module`, `output`) are line-anchored
in Bicep, which is enough to compare them with the JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[2] / "infra"
ARM_JSON = INFRA / "azuredeploy.json"
MAIN_BICEP = INFRA / "main.bicep"
DEPLOYMENTS = ("Microsoft.Resources/deployments", "2022-09-01")  # what a Bicep module becomes


def arm() -> dict[str, Any]:
    return json.loads(ARM_JSON.read_text())


def arm_resources(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource, nested deployments' inline templates included."""
    out = []
    for r in template.get("resources", []):
        out.append(r)
        inner = (r.get("properties") or {}).get("template")
        if isinstance(inner, dict):
            out.extend(arm_resources(inner))
    return out


def arm_nested_templates(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["properties"]["template"] for r in template.get("resources", [])
            if isinstance((r.get("properties") or {}).get("template"), dict)]


@dataclass
class Bicep:
    path: Path
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> type, default?, description?
    resources: list[tuple[str, str, str]] = field(default_factory=list)  # (symbol, type, apiVersion)
    modules: dict[str, str] = field(default_factory=dict)  # symbol -> relative path
    outputs: dict[str, str] = field(default_factory=dict)  # name -> expression
    text: str = ""


_PARAM = re.compile(r"^param\s+(\w+)\s+(\w+)(\s*=\s*(.+))?$", re.M)
_RESOURCE = re.compile(r"^resource\s+(\w+)\s+'([^'@]+)@([^']+)'", re.M)
_MODULE = re.compile(r"^module\s+(\w+)\s+'([^']+)'", re.M)
_OUTPUT = re.compile(r"^output\s+(\w+)\s+\w+\s*=\s*(.+)$", re.M)


def bicep(path: Path = MAIN_BICEP) -> Bicep:
    text = path.read_text()
    b = Bicep(path, text=text)
    lines = text.splitlines()
    for m in _PARAM.finditer(text):
        line_no = text.count("\n", 0, m.start())
        # decorators sit on the lines just above the declaration
        above = []
        i = line_no - 1
        while i >= 0 and (lines[i].startswith("@") or lines[i].startswith("  ")
                          or lines[i].startswith("]")):
            above.append(lines[i])
            i -= 1
        # @secure() string is ARM's securestring (never echoed in deployment history)
        kind = m.group(2)
        if kind == "string" and "@secure()" in above:
            kind = "securestring"
        b.params[m.group(1)] = {"type": kind, "default": m.group(4),
                                "described": any(a.startswith("@description(") for a in above)}
    b.resources = [(m.group(1), m.group(2), m.group(3)) for m in _RESOURCE.finditer(text)]
    b.modules = {m.group(1): m.group(2) for m in _MODULE.finditer(text)}
    b.outputs = {m.group(1): m.group(2) for m in _OUTPUT.finditer(text)}
    return b


def bicep_all() -> list[Bicep]:
    """main.bicep and every module it uses."""
    main = bicep()
    return [main, *(bicep(INFRA / rel) for rel in sorted(set(main.modules.values())))]


def bicep_string_array(text: str, var: str) -> list[str]:
    """The items of `var <var> = [ 'a' 'b' ... ]` (one quoted string per line)."""
    m = re.search(rf"^var\s+{var}\s*=\s*\[(.*?)^\]", text, re.M | re.S)
    assert m, f"var {var} not found"
    return re.findall(r"^\s*'([^']*)'\s*$", m.group(1), re.M)


def bicep_app_setting_names(text: str) -> list[str]:
    m = re.search(r"appSettings:\s*\[(.*?)\n      \]", text, re.S)
    assert m, "appSettings block not found"
    return re.findall(r"name:\s*'([^']+)'", m.group(1))


def arm_app_settings(template: dict[str, Any]) -> dict[str, Any]:
    site = next(r for r in template["resources"] if r["type"] == "Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
