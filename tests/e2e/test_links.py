"""The capture link in the output and the email: it reads the file, it cannot write or
delete it, and it expires."""

from __future__ import annotations

import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from .scenarios import Runs
from .stack import http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_read_link_reads_but_cannot_write_and_expires(runs: Runs) -> None:
    output = runs.get("alert_with_duplicate")["final"]["output"]
    link = output["summary"]["link"]
    with urllib.request.urlopen(link, timeout=30) as r:  # Azurite on 127.0.0.1
        head = r.read(4)
    assert head in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                    b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")  # a pcap or pcapng file
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["sp"] == ["r"]  # read only
    expires = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now < expires <= now + timedelta(hours=24, minutes=5)
    assert http("PUT", link, raw=b"overwrite", headers={"x-ms-blob-type": "BlockBlob"}
                ).status == 403
    assert http("DELETE", link).status == 403
    assert http("GET", link).status == 200  # still there, unchanged by the attempts
