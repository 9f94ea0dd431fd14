"""Notification channel checks: is each configured channel usable, without sending an
alert? Email (Azure Communication Services) today.

Extension point: `CHANNEL_CHECKS` is the list the doctor runs; a channel being wired
(Teams, Slack, PagerDuty, webhook: `alertcap/channels/`) adds one function
`(settings, probe) -> list[Check]` that validates its settings and probes its endpoint
where the service allows it without posting a message (a HEAD or GET of the host, never
the incoming-webhook URL itself: a POST there would be a real notification).

Boundary: decisions over Settings; network only through the injected probe.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from alertcap.doctor.checks import Probe, scrub
from alertcap.doctor.model import Check, fail, ok
from alertcap.sdk.clients import parse_connection_string
from alertcap.settings import Settings

ChannelCheck = Callable[[Settings, Probe], list[Check]]


def _email_endpoint(s: Settings) -> str | None:
    if s.email_connection_string:
        return parse_connection_string(s.email_connection_string).get("endpoint") or None
    return s.email_endpoint


def email_checks(s: Settings, probe: Probe) -> list[Check]:
    n, subject = "channel:email", "ALERTCAP_EMAIL_*"
    configured = any((s.email_sender, s.email_recipients, s.email_connection_string,
                      s.email_endpoint))
    if not configured:
        return [fail(n, subject, "no-channel",
                     "no notification channel is configured: captures and failures would "
                     "reach nobody",
                     "Set ALERTCAP_EMAIL_ENDPOINT (or _CONNECTION_STRING), "
                     "ALERTCAP_EMAIL_SENDER and ALERTCAP_EMAIL_RECIPIENTS.")]
    checks: list[Check] = []
    if not s.email_sender:
        checks.append(fail(n, "ALERTCAP_EMAIL_SENDER", "no-sender",
                           "recipients are set but no sender: every email is skipped",
                           "Set ALERTCAP_EMAIL_SENDER to a MailFrom address of the ACS "
                           "email domain, e.g. DoNotReply@<domain>.azurecomm.net."))
    elif "@" not in s.email_sender:
        checks.append(fail(n, "ALERTCAP_EMAIL_SENDER", "bad-sender",
                           f"the sender {s.email_sender!r} is not an address",
                           "Set ALERTCAP_EMAIL_SENDER to DoNotReply@<your ACS domain>."))
    if not s.email_recipients:
        checks.append(fail(n, "ALERTCAP_EMAIL_RECIPIENTS", "no-recipients",
                           "a sender is set but no recipients: every email is skipped",
                           "Set ALERTCAP_EMAIL_RECIPIENTS (comma-separated addresses)."))
    endpoint = _email_endpoint(s)
    if not endpoint:
        checks.append(fail(n, "ALERTCAP_EMAIL_ENDPOINT", "no-email-service",
                           "no Azure Communication Services endpoint: emails cannot be sent",
                           "Set ALERTCAP_EMAIL_ENDPOINT=https://<acs>.communication.azure.com "
                           "(the identity sends) or ALERTCAP_EMAIL_CONNECTION_STRING."))
    else:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            checks.append(fail(n, "ALERTCAP_EMAIL_ENDPOINT", "bad-endpoint",
                               f"the email endpoint {scrub(endpoint)!r} is not a URL",
                               "Use https://<acs resource>.communication.azure.com."))
        else:
            # The SDK always speaks TLS to the endpoint's host: probe what it will use.
            origin = f"https://{parts.netloc}/"
            why = probe(origin)
            if why is not None:
                checks.append(fail(n, origin, "email-unreachable",
                                   f"the email service at {parts.hostname} did not answer: "
                                   f"{scrub(why)}",
                                   "Check ALERTCAP_EMAIL_ENDPOINT, DNS and the app's outbound "
                                   "network."))
    if not checks:
        checks.append(ok(n, subject, f"sender {s.email_sender}, "
                                     f"{len(s.email_recipients)} recipient(s), service "
                                     "reachable (nothing sent)"))
    return checks


CHANNEL_CHECKS: list[ChannelCheck] = [email_checks]
