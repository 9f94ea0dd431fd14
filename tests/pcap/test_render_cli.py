"""Text/HTML rendering from the summary dict, and the command line."""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alertcap.pcap import render_html, render_text, summarise
from tests.pcap import pcapgen

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=1>'


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    return summarise(io.BytesIO(pcapgen.mixed().cap.pcap()), top=5).to_dict()


def _hostile(summary: dict[str, Any]) -> dict[str, Any]:
    """Every string and port the renderers show replaced by markup."""
    d = json.loads(json.dumps(summary))
    d["warnings"] = [HOSTILE]
    d["start_iso"] = HOSTILE
    d["protocols"][0]["name"] = HOSTILE
    for key in ("top_conversations_by_packets", "top_conversations_by_bytes"):
        for c in d[key]:
            c.update(a=HOSTILE, b=HOSTILE, a_port=HOSTILE, proto=HOSTILE)
    for key in ("top_host_pairs_by_packets", "top_host_pairs_by_bytes"):
        for p in d[key]:
            p.update(a=HOSTILE, b=HOSTILE)
    for t in d["top_talkers"]:
        t["host"] = HOSTILE
    for p in d["top_dst_ports"]:
        p.update(proto=HOSTILE, port=HOSTILE)
    d["tcp"]["new_connections_per_s"]["peak_at"] = HOSTILE
    for c in d["changes"]["conversations"]:
        c.update(a=HOSTILE, b_port=HOSTILE)
    # what payloads and findings bring: names and sentences
    d["verdict"] = {"abnormal": True, "headline": HOSTILE, "lines": [HOSTILE, HOSTILE]}
    d["findings"] = [{"kind": "port_scan", "severity": HOSTILE, "confidence": HOSTILE,
                      "sentence": HOSTILE}]  # fmt: skip
    d["top_conversations_by_bytes"][0].update(a_name=HOSTILE, b_name=HOSTILE)
    d["top_talkers"][0]["name"] = HOSTILE
    return d


def test_html_escapes_every_value(summary: dict[str, Any]) -> None:
    out = render_html(_hostile(summary))
    assert "<script" not in out and "<img src=x" not in out and 'alert("x")' not in out
    assert out.count(html.escape(HOSTILE)) >= 15
    # only the renderer's own tags, all with inline styles and no <style> block;
    # the one picture is the inline attachment
    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", out))
    assert tags <= {"div", "h2", "h3", "p", "b", "table", "tr", "th", "td", "img"}
    assert re.findall(r"<img src=\"([^\"]*)\"", out) == ["cid:timeline"]
    assert "<style" not in out and "class=" not in out


def test_text_and_html_show_the_numbers(summary: dict[str, Any]) -> None:
    text = render_text(summary)
    page = render_html(summary)
    top = summary["top_conversations_by_packets"][0]
    for out in (text, page):
        assert "Capture summary" in out
        assert f"{summary['packets']:,}" in out
        assert f"{top['a']}:{top['a_port']}" in out
        assert "What changed between the first and second half" in out
        assert "+390" in out  # the surging conversation
    assert "WARNING" not in text


def test_renderers_tolerate_a_sparse_dict() -> None:
    for out in (render_text({}), render_html({"warnings": ["w"], "changes": None})):
        assert "Capture summary" in out


def test_ipv6_endpoints_are_bracketed() -> None:
    conv = {"proto": "tcp", "a": "fd00::1", "a_port": 443, "b": "fd00::2", "b_port": 5000,
            "packets": 1}  # fmt: skip
    assert "[fd00::1]:443 <-> [fd00::2]:5000" in render_text(
        {"top_conversations_by_packets": [conv]}
    )


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "alertcap.pcap", *args], input=stdin, capture_output=True,
        cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_cli_text_json_and_stdin(tmp_path: Path) -> None:
    data = pcapgen.mixed().cap.pcap()
    path = tmp_path / "m.pcap"
    path.write_bytes(data)
    text = _cli(str(path))
    assert text.returncode == 0
    assert text.stdout.startswith(b"Nothing abnormal found in 1,606 packets over 9.6 s.\n")
    js = _cli(str(path), "--json", "--top", "2")
    d = json.loads(js.stdout)
    assert js.returncode == 0 and d["schema"] == "alertcap.summary/2"
    assert len(d["top_talkers"]) == 2
    piped = _cli("-", "--json", stdin=data)
    assert piped.returncode == 0
    assert {k: v for k, v in json.loads(piped.stdout).items() if k != "source"} == {
        k: v for k, v in json.loads(_cli(str(path), "--json").stdout).items() if k != "source"
    }


def test_cli_damaged_capture_exits_0_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcapgen.mixed().cap.pcap()[:-10])
    out = _cli(str(path))
    assert out.returncode == 0 and b"WARNING: file is truncated" in out.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello, this is text\n", b"not a pcap or pcapng file"), (b"", b"empty stream"),
     (None, b"No such file")],
    ids=["text", "empty", "missing"],
)  # fmt: skip
def test_cli_not_a_capture_exits_2(tmp_path: Path, content: bytes | None, message: bytes) -> None:
    path = tmp_path / "x.bin"
    if content is not None:
        path.write_bytes(content)
    out = _cli(str(path))
    assert out.returncode == 2
    assert message in out.stderr and b"Traceback" not in out.stderr
    assert out.stdout == b""
