"""The inbox on disk: ``<state>/inbox/<id>.json`` and ``<id>.eml`` per accepted message."""

from __future__ import annotations

import base64
import datetime as dt
import email.message
import email.utils
import json
import os
from pathlib import Path


def _addresses(items: list[dict] | None) -> list[str]:
    return [i["address"] for i in items or []]


def _display(items: list[dict] | None) -> str:
    return ", ".join(
        email.utils.formataddr((i.get("displayName") or "", i["address"])) for i in items or []
    )


class Inbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, message_id: str) -> Path:
        return self.root / f"{message_id}.json"

    def has(self, message_id: str) -> bool:
        return self.path(message_id).exists()

    def store(self, message_id: str, message: dict) -> dict:
        content = message["content"]
        rcpt = message["recipients"]
        received = dt.datetime.now(dt.UTC)
        record = {
            "id": message_id,
            "sender": message["senderAddress"],
            "to": _addresses(rcpt.get("to")),
            "cc": _addresses(rcpt.get("cc")),
            "bcc": _addresses(rcpt.get("bcc")),
            "replyTo": _addresses(message.get("replyTo")),
            "subject": content["subject"],
            "plainText": content.get("plainText"),
            "html": content.get("html"),
            "headers": message.get("headers") or {},
            "attachments": [a.get("name") for a in message.get("attachments") or []],
            "inline": {a["contentId"]: {"name": a["name"], "contentType": a["contentType"]}
                       for a in message.get("attachments") or [] if a.get("contentId")},
            "receivedAt": received.isoformat().replace("+00:00", "Z"),
        }
        eml = email.message.EmailMessage()
        eml["From"] = message["senderAddress"]
        eml["To"] = _display(rcpt.get("to"))
        if rcpt.get("cc"):
            eml["Cc"] = _display(rcpt.get("cc"))
        eml["Subject"] = content["subject"]
        eml["Date"] = email.utils.format_datetime(received)
        eml["Message-ID"] = f"<{message_id}@localdev.alertcap>"
        for name, value in record["headers"].items():
            eml[name] = value
        eml.set_content(content.get("plainText") or "")
        if content.get("html"):
            eml.add_alternative(content["html"], subtype="html")
        parts = self.root / f"{message_id}.parts"
        for a in message.get("attachments") or []:
            data = base64.b64decode(a["contentInBase64"])
            if a.get("contentId"):
                # multipart/related beside the HTML, as a mail client expects inline images
                html_part = eml.get_body(("html",)) or eml
                assert isinstance(html_part, email.message.EmailMessage)
                maintype, _, subtype = a["contentType"].partition("/")
                html_part.add_related(data, maintype=maintype, subtype=subtype,
                                      cid=f"<{a['contentId']}>", filename=a["name"])
                parts.mkdir(exist_ok=True)
                self._write(parts / a["contentId"], data)
            else:
                maintype, _, subtype = a["contentType"].partition("/")
                eml.add_attachment(data, maintype=maintype, subtype=subtype,
                                   filename=a["name"])
        # Write the .eml first and the JSON last: the JSON's presence means "stored".
        self._write(self.root / f"{message_id}.eml", eml.as_bytes())
        self._write(self.path(message_id), json.dumps(record, indent=2).encode())
        return record

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def inline(self, message_id: str, content_id: str) -> tuple[str, bytes] | None:
        record = self.get(message_id)
        meta = (record or {}).get("inline", {}).get(content_id)
        path = self.root / f"{message_id}.parts" / content_id
        if meta is None or not path.is_file():
            return None
        return meta["contentType"], path.read_bytes()

    def get(self, message_id: str) -> dict | None:
        try:
            return json.loads(self.path(message_id).read_text())
        except (OSError, ValueError):
            return None

    def newest_first(self) -> list[dict]:
        records = []
        for p in self.root.glob("*.json"):
            try:
                records.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda r: r["receivedAt"], reverse=True)
