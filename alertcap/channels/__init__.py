"""Notification channels beyond email: pure renderers and signing, nothing else.

Boundary: each module turns an orchestration output (``alertcap.run/1``) plus the links
the caller chose (run page, capture file) into the exact request body, and for the
generic webhook the signature headers. No I/O, no clock reads, no azure imports: the
activity that sends owns the URL, the secret's storage, the clock and the retries.

- ``teams``: an Adaptive Card in the Workflows ("When a Teams webhook request is
  received") message envelope.
- ``slack``: Block Kit blocks built with ``slack_sdk``'s models (they validate lengths).
- ``pagerduty``: Events API v2 ``trigger`` and ``resolve`` events.
- ``webhook``: the run as JSON, signed with HMAC-SHA256 over timestamp and body, and the
  ``verify`` a receiver uses.
"""

from alertcap.channels.common import Links

__all__ = ["Links"]
