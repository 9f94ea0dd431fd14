"""Settings: read once from the environment (app settings in Azure, local.settings.json
locally), validated, frozen. Every setting is documented in local.settings.json.example;
`ENV` below is the list the infra template and its test are checked against.

Nothing else in the app reads os.environ (orchestrators never do: they get what they need
in their input).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache

from alertcap.domain import limits
from alertcap.domain.run import CaptureFilter, CaptureOptions, RunPolicy
from alertcap.domain.standby import (
    MAX_FILE_COUNT,
    MAX_FILE_SIZE_BYTES,
    MAX_SESSION_SECONDS,
    MODES,
    RingSettings,
    StandbySettings,
)
from alertcap.domain.validation import validate_filters, validate_options
from alertcap.domain.vm import VmRef
from alertcap.errors import AlertcapError, ConfigError, Unprocessable

PUBLIC_ARM = "https://management.azure.com"
PAGERDUTY_EVENTS = "https://events.pagerduty.com/v2/enqueue"
CHANNELS = ("teams", "slack", "pagerduty", "webhook")  # email is the `notify` activity

# Every environment variable the app reads, with its default (None: optional, no default).
ENV: dict[str, str | None] = {
    "ALERTCAP_ARM_ENDPOINT": PUBLIC_ARM,
    "ALERTCAP_ARM_SCOPE": None,
    "ALERTCAP_CA_BUNDLE": None,
    "AZURE_CLIENT_ID": None,
    "ALERTCAP_STORAGE_ACCOUNT_ID": None,
    "ALERTCAP_BLOB_CONNECTION_STRING": None,
    "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS": "300",
    "ALERTCAP_CAPTURE_BYTES_PER_PACKET": "0",
    "ALERTCAP_CAPTURE_TOTAL_BYTES": "1073741824",
    "ALERTCAP_CAPTURE_LOCAL_FILE_PATH": None,
    "ALERTCAP_CAPTURE_FILTERS": None,
    "ALERTCAP_CAPTURE_LIMIT": "10000",
    "ALERTCAP_CAPTURE_PREFIX": "alertcap",
    "ALERTCAP_INSTALL_AGENT": "false",
    "ALERTCAP_POLL_INTERVAL_SECONDS": "15",
    "ALERTCAP_MAX_POLL_INTERVAL_SECONDS": "60",
    "ALERTCAP_STOP_GRACE_SECONDS": "120",
    "ALERTCAP_POLLS_PER_GENERATION": "40",
    "ALERTCAP_RETRY_FIRST_INTERVAL_MS": "5000",
    "ALERTCAP_RETRY_MAX_ATTEMPTS": "5",
    "ALERTCAP_LRO_POLLING_SECONDS": "5",
    "ALERTCAP_EMAIL_CONNECTION_STRING": None,
    "ALERTCAP_EMAIL_ENDPOINT": None,
    "ALERTCAP_EMAIL_SENDER": None,
    "ALERTCAP_EMAIL_RECIPIENTS": None,
    "ALERTCAP_MAX_BODY_BYTES": str(limits.DEFAULT_MAX_BODY_BYTES),
    "ALERTCAP_LINK_TTL_HOURS": "24",
    "ALERTCAP_SUMMARY_TOP": "10",
    "ALERTCAP_NOTIFY_RETRY_FIRST_SECONDS": "60",
    "ALERTCAP_NOTIFY_RETRY_MAX_SECONDS": "1800",
    "ALERTCAP_NOTIFY_GIVE_UP_SECONDS": "86400",
    "ALERTCAP_RUNS_CONTAINER_URL": None,
    "ALERTCAP_DOCTOR_TARGETS": None,
    "ALERTCAP_DOCTOR_STATE_BLOB": None,
    # Channels beyond email (issue #16). URLs and keys are secrets: in Azure, Key Vault
    # references (@Microsoft.KeyVault(...)) that App Service resolves before we read them.
    "ALERTCAP_TEAMS_URL": None,
    "ALERTCAP_SLACK_URL": None,
    "ALERTCAP_PAGERDUTY_ROUTING_KEY": None,
    "ALERTCAP_PAGERDUTY_URL": PAGERDUTY_EVENTS,
    "ALERTCAP_WEBHOOK_URL": None,
    "ALERTCAP_WEBHOOK_SECRET": None,
    "ALERTCAP_CHANNEL_TIMEOUT_SECONDS": "10",
    "ALERTCAP_FANOUT_CONCURRENCY": "20",
    "ALERTCAP_MAX_TARGETS_PER_ALERT": "500",
    "ALERTCAP_STANDBY_TARGETS": None,
    "ALERTCAP_STANDBY_TAG": "alertcap-standby",
    "ALERTCAP_STANDBY_LOOKBACK_SECONDS": "600",
    "ALERTCAP_STANDBY_MODE": "both",
    "ALERTCAP_STANDBY_FILE_COUNT": "10",
    "ALERTCAP_STANDBY_FILE_SIZE_BYTES": "104857600",
    "ALERTCAP_STANDBY_SESSION_SECONDS": "86400",
    "ALERTCAP_STANDBY_MAX_RING_BYTES": "2147483648",
    "ALERTCAP_STANDBY_CHECK_SECONDS": "300",
    "ALERTCAP_WEBHOOK_AUTH": "entra",
    # The orphan sweep (starters/orphans.py): where to look, and how often.
    "ALERTCAP_ORPHAN_SWEEP_SCOPES": None,
    "ALERTCAP_ORPHAN_SWEEP_MINUTES": "5",
}
# Minutes the orphan sweep's timer may be set to: divisors of 60, so "every N minutes"
# (NCRONTAB "0 */N * * * *") means even gaps, also across the hour.
SWEEP_MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)
_SCOPE = re.compile(r"/subscriptions/[0-9a-fA-F-]{36}(/resourceGroups/[-\w._()]{1,90})?",
                    re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Settings:
    arm_endpoint: str = PUBLIC_ARM
    arm_scope: str = PUBLIC_ARM + "/.default"
    ca_bundle: str | None = None
    managed_identity_client_id: str | None = None
    storage_account_id: str | None = None
    blob_connection_string: str | None = None
    runs_container_url: str | None = None
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    policy: RunPolicy = field(default_factory=RunPolicy)
    lro_polling_seconds: float = 5.0
    email_connection_string: str | None = None
    email_endpoint: str | None = None
    email_sender: str | None = None
    email_recipients: tuple[str, ...] = ()
    max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES
    # How /api/alerts authenticates: "functionKey" (the key in the action group's URL) or
    # "entra" (Azure Monitor's secure webhook; App Service Authentication validates the
    # token and the route trusts only its validated principal).
    webhook_auth: str = "entra"
    # What the doctor checks: VM ids and resource-group ids (standby VMs, a later feature,
    # join this list). Checked by the doctor itself, so a typo here never stops captures.
    doctor_targets: tuple[str, ...] = ()
    # Blob URL where the scheduled doctor keeps the problems it last notified.
    doctor_state_blob: str | None = None
    # Channels: None = not configured. Secrets all (a Teams/Slack URL carries its own
    # signature), so never in a repr, a log line or an orchestration input.
    teams_url: str | None = None
    slack_url: str | None = None
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = PAGERDUTY_EVENTS
    webhook_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    channel_timeout_seconds: int = 10

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels, by name (what a run's input may carry)."""
        configured = {"teams": self.teams_url, "slack": self.slack_url,
                      "pagerduty": self.pagerduty_routing_key, "webhook": self.webhook_url}
        return tuple(c for c in CHANNELS if configured[c])
    # Big alerts (orchestrators/fanout.py): runs of one alert at a time, and targets one
    # alert may start (the rest are refused in the webhook's answer).
    fanout_concurrency: int = 20
    max_targets_per_alert: int = 500
    standby: StandbySettings = field(default_factory=StandbySettings)
    # The orphan sweep: Network Watcher resource-group ids (or subscription ids) whose run
    # captures it checks, and its timer's period (fixed at import: orphan_sweep_schedule).
    orphan_sweep_scopes: tuple[str, ...] = ()
    orphan_sweep_minutes: int = 5

    def __repr__(self) -> str:
        # Connection strings hold account keys: never let them reach a log via repr.
        return f"Settings(arm_endpoint={self.arm_endpoint!r}, ...)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str) -> str | None:
            value = env.get(name, ENV[name])
            return value.strip() if isinstance(value, str) and value.strip() else None

        def number(name: str, low: int, high: int) -> int:
            raw = text(name) or str(ENV[name])
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name} must be a whole number, got {raw!r}")
                return int(str(ENV[name]))
            if not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, got {value}")
            return value

        def flag(name: str) -> bool:
            raw = (text(name) or "false").lower()
            if raw not in ("true", "false", "1", "0", "yes", "no"):
                problems.append(f"{name} must be true or false, got {raw!r}")
            return raw in ("true", "1", "yes")

        arm = (text("ALERTCAP_ARM_ENDPOINT") or PUBLIC_ARM).rstrip("/")
        if not arm.startswith("https://"):
            problems.append("ALERTCAP_ARM_ENDPOINT must be an https:// URL "
                            "(bearer tokens are never sent over plain HTTP)")
        ca_bundle = text("ALERTCAP_CA_BUNDLE")
        if ca_bundle and not os.path.isfile(ca_bundle):
            problems.append(f"ALERTCAP_CA_BUNDLE names no file: {ca_bundle}")

        filters: tuple[CaptureFilter, ...] = ()
        raw_filters = text("ALERTCAP_CAPTURE_FILTERS")
        if raw_filters:
            try:
                filters = validate_filters(json.loads(raw_filters))
            except (ValueError, Unprocessable) as exc:
                problems.append(f"ALERTCAP_CAPTURE_FILTERS: {exc}")

        capture = CaptureOptions(
            time_limit_seconds=number("ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS", 1,
                                      limits.MAX_TIME_LIMIT_SECONDS),
            bytes_per_packet=number("ALERTCAP_CAPTURE_BYTES_PER_PACKET", 0,
                                    limits.MAX_BYTES_PER_PACKET),
            total_bytes=number("ALERTCAP_CAPTURE_TOTAL_BYTES", 1, limits.MAX_TOTAL_BYTES),
            filters=filters,
            local_file_path=text("ALERTCAP_CAPTURE_LOCAL_FILE_PATH"),
        )
        storage_account_id = text("ALERTCAP_STORAGE_ACCOUNT_ID")
        capture = replace(capture, to_storage=bool(storage_account_id))
        try:
            validate_options(capture)
        except Unprocessable as exc:
            problems.append(f"capture settings: {exc.message}")

        policy = RunPolicy(
            poll_interval_seconds=number("ALERTCAP_POLL_INTERVAL_SECONDS", 1, 3600),
            max_poll_interval_seconds=number("ALERTCAP_MAX_POLL_INTERVAL_SECONDS", 1, 3600),
            stop_grace_seconds=number("ALERTCAP_STOP_GRACE_SECONDS", 0, 3600),
            polls_per_generation=number("ALERTCAP_POLLS_PER_GENERATION", 2, 1000),
            capture_limit=number("ALERTCAP_CAPTURE_LIMIT", 1, 10000),
            install_agent=flag("ALERTCAP_INSTALL_AGENT"),
            capture_prefix=text("ALERTCAP_CAPTURE_PREFIX") or "alertcap",
            storage_account_id=storage_account_id,
            retry_first_interval_ms=number("ALERTCAP_RETRY_FIRST_INTERVAL_MS", 1, 600000),
            retry_max_attempts=number("ALERTCAP_RETRY_MAX_ATTEMPTS", 1, 20),
            summary_top=number("ALERTCAP_SUMMARY_TOP", 1, 100),
            link_ttl_hours=number("ALERTCAP_LINK_TTL_HOURS", 1, 168),
            notify_first_retry_seconds=number("ALERTCAP_NOTIFY_RETRY_FIRST_SECONDS", 1, 86400),
            notify_max_retry_seconds=number("ALERTCAP_NOTIFY_RETRY_MAX_SECONDS", 1, 86400),
            notify_give_up_seconds=number("ALERTCAP_NOTIFY_GIVE_UP_SECONDS", 0, 7 * 86400),
            standby_lookback_seconds=number("ALERTCAP_STANDBY_LOOKBACK_SECONDS", 1, 86400),
            standby_mode=(text("ALERTCAP_STANDBY_MODE") or "both").lower(),
        )
        standby = _standby(text, number, policy, problems)
        if policy.notify_max_retry_seconds < policy.notify_first_retry_seconds:
            problems.append("ALERTCAP_NOTIFY_RETRY_MAX_SECONDS is below "
                            "ALERTCAP_NOTIFY_RETRY_FIRST_SECONDS")
        runs_container_url = text("ALERTCAP_RUNS_CONTAINER_URL")
        if runs_container_url and not runs_container_url.startswith(("https://", "http://127.")):
            problems.append("ALERTCAP_RUNS_CONTAINER_URL must be an https:// blob container URL")
        if policy.max_poll_interval_seconds < policy.poll_interval_seconds:
            problems.append("ALERTCAP_MAX_POLL_INTERVAL_SECONDS is below "
                            "ALERTCAP_POLL_INTERVAL_SECONDS")

        recipients = tuple(
            r.strip() for r in (text("ALERTCAP_EMAIL_RECIPIENTS") or "").replace(";", ",")
            .split(",") if r.strip()
        )
        for r in recipients:
            if "@" not in r:
                problems.append(f"ALERTCAP_EMAIL_RECIPIENTS: not an address: {r!r}")

        lro = text("ALERTCAP_LRO_POLLING_SECONDS") or "5"
        try:
            lro_seconds = float(lro)
        except ValueError:
            problems.append(f"ALERTCAP_LRO_POLLING_SECONDS must be a number, got {lro!r}")
            lro_seconds = 5.0

        teams_url, slack_url = text("ALERTCAP_TEAMS_URL"), text("ALERTCAP_SLACK_URL")
        webhook_url = text("ALERTCAP_WEBHOOK_URL")
        pagerduty_url = (text("ALERTCAP_PAGERDUTY_URL") or PAGERDUTY_EVENTS)
        for name, url in (("ALERTCAP_TEAMS_URL", teams_url), ("ALERTCAP_SLACK_URL", slack_url),
                          ("ALERTCAP_WEBHOOK_URL", webhook_url),
                          ("ALERTCAP_PAGERDUTY_URL", pagerduty_url)):
            # Only the name in the message: the URL itself carries a signature.
            if url and not url.startswith("https://"):
                problems.append(f"{name} must be an https:// URL")
        routing_key = text("ALERTCAP_PAGERDUTY_ROUTING_KEY")
        if routing_key and (len(routing_key) != 32 or not routing_key.isalnum()):
            # PagerDuty Events API v2: the integration key is 32 characters.
            problems.append("ALERTCAP_PAGERDUTY_ROUTING_KEY must be the 32-character "
                            "integration key of an Events API v2 integration")
        webhook_secrets = tuple(x.strip() for x in (text("ALERTCAP_WEBHOOK_SECRET") or "")
                                .split(",") if x.strip())
        if webhook_url and not webhook_secrets:
            problems.append("ALERTCAP_WEBHOOK_URL is set but ALERTCAP_WEBHOOK_SECRET is not: "
                            "the webhook is only sent signed")
        if any(len(x) < 16 for x in webhook_secrets):
            problems.append("ALERTCAP_WEBHOOK_SECRET: each secret needs at least 16 characters")
        channel_timeout = number("ALERTCAP_CHANNEL_TIMEOUT_SECONDS", 1, 60)
        policy = replace(policy, channels=tuple(c for c, on in (
            ("teams", teams_url), ("slack", slack_url), ("pagerduty", routing_key),
            ("webhook", webhook_url)) if on))

        webhook_auth = webhook_auth_from_env(env)
        if webhook_auth is None:
            problems.append("ALERTCAP_WEBHOOK_AUTH must be functionKey or entra")
            webhook_auth = "entra"

        sweep_scopes = tuple(t.strip().rstrip("/") for t in (
            text("ALERTCAP_ORPHAN_SWEEP_SCOPES") or "").replace(";", ",").split(",") if t.strip())
        for scope in sweep_scopes:
            if not _SCOPE.fullmatch(scope):
                problems.append(f"ALERTCAP_ORPHAN_SWEEP_SCOPES: {scope[:200]!r} is neither a "
                                "subscription id nor a resource-group id")
        sweep_minutes = number("ALERTCAP_ORPHAN_SWEEP_MINUTES", 1, 60)
        if sweep_minutes not in SWEEP_MINUTES:
            problems.append("ALERTCAP_ORPHAN_SWEEP_MINUTES must divide the hour: one of "
                            + ", ".join(map(str, SWEEP_MINUTES)))

        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems),
                              detail={"problems": problems})
        return cls(
            arm_endpoint=arm,
            arm_scope=text("ALERTCAP_ARM_SCOPE") or arm + "/.default",
            ca_bundle=ca_bundle,
            managed_identity_client_id=text("AZURE_CLIENT_ID"),
            storage_account_id=storage_account_id,
            blob_connection_string=text("ALERTCAP_BLOB_CONNECTION_STRING"),
            runs_container_url=runs_container_url,
            capture=capture,
            policy=policy,
            lro_polling_seconds=lro_seconds,
            email_connection_string=text("ALERTCAP_EMAIL_CONNECTION_STRING"),
            email_endpoint=text("ALERTCAP_EMAIL_ENDPOINT"),
            email_sender=text("ALERTCAP_EMAIL_SENDER"),
            email_recipients=recipients,
            max_body_bytes=number("ALERTCAP_MAX_BODY_BYTES", limits.MIN_MAX_BODY_BYTES,
                                  limits.MAX_MAX_BODY_BYTES),
            webhook_auth=webhook_auth,
            doctor_targets=tuple(t.strip() for t in (text("ALERTCAP_DOCTOR_TARGETS") or "")
                                 .replace(";", ",").split(",") if t.strip()),
            doctor_state_blob=text("ALERTCAP_DOCTOR_STATE_BLOB"),
            teams_url=teams_url,
            slack_url=slack_url,
            pagerduty_routing_key=routing_key,
            pagerduty_url=pagerduty_url,
            webhook_url=webhook_url,
            webhook_secrets=webhook_secrets,
            channel_timeout_seconds=channel_timeout,
            fanout_concurrency=number("ALERTCAP_FANOUT_CONCURRENCY", 1, 1000),
            max_targets_per_alert=number("ALERTCAP_MAX_TARGETS_PER_ALERT", 1, 10000),
            standby=standby,
            orphan_sweep_scopes=sweep_scopes,
            orphan_sweep_minutes=sweep_minutes,
        )


def _standby(text: Callable[[str], str | None], number: Callable[[str, int, int], int],
             policy: RunPolicy, problems: list[str]) -> StandbySettings:
    """ALERTCAP_STANDBY_*: each bad value is named here, at start-up, not at the first alert."""
    if policy.standby_mode not in MODES:
        problems.append(f"ALERTCAP_STANDBY_MODE must be one of {', '.join(MODES)}, "
                        f"got {policy.standby_mode!r}")
    targets: list[str] = []
    for raw in (text("ALERTCAP_STANDBY_TARGETS") or "").replace(";", ",").split(","):
        target = raw.strip().rstrip("/")
        if not target:
            continue
        parts = target.split("/")
        is_group = len(parts) == 5 and parts[1].lower() == "subscriptions" \
            and parts[3].lower() == "resourcegroups" and all(parts[2:5:2])
        if not is_group:
            try:
                VmRef.parse(target)
            except AlertcapError:
                problems.append(f"ALERTCAP_STANDBY_TARGETS: {target!r} is neither a VM id nor "
                                "a resource-group id")
                continue
        targets.append(target)
    ring = RingSettings(
        file_count=number("ALERTCAP_STANDBY_FILE_COUNT", 1, MAX_FILE_COUNT),
        file_size_bytes=number("ALERTCAP_STANDBY_FILE_SIZE_BYTES", 1024, MAX_FILE_SIZE_BYTES),
        session_seconds=number("ALERTCAP_STANDBY_SESSION_SECONDS", 60, MAX_SESSION_SECONDS),
    )
    cap = number("ALERTCAP_STANDBY_MAX_RING_BYTES", 1024, 10 * 2**40)
    if ring.ring_bytes > cap:
        problems.append(
            f"standby ring of {ring.file_count} files x {ring.file_size_bytes} bytes = "
            f"{ring.ring_bytes} bytes per VM exceeds ALERTCAP_STANDBY_MAX_RING_BYTES ({cap})")
    check = number("ALERTCAP_STANDBY_CHECK_SECONDS", 5, 3600)
    if check * 2 >= ring.session_seconds:
        problems.append("ALERTCAP_STANDBY_CHECK_SECONDS must be under half of "
                        "ALERTCAP_STANDBY_SESSION_SECONDS (the keeper renews between checks)")
    return StandbySettings(targets=tuple(targets), tag=text("ALERTCAP_STANDBY_TAG")
                           or "alertcap-standby", ring=ring, max_ring_bytes=cap,
                           check_seconds=check, renew_before_seconds=check * 2)


def webhook_auth_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """ALERTCAP_WEBHOOK_AUTH alone: the webhook's auth level is fixed when the function is
    declared (at import), before the other settings are validated; None when invalid."""
    # Secure by default: a deployment without the setting refuses keyed webhooks (401 that
    # names the setting) rather than accept a key anyone with Reader can copy.
    raw = (os.environ if env is None else env).get("ALERTCAP_WEBHOOK_AUTH") or "entra"
    return {"functionkey": "functionKey", "entra": "entra"}.get(raw.strip().lower())


def orphan_sweep_schedule(env: Mapping[str, str] | None = None) -> str:
    """The orphan sweep timer's NCRONTAB schedule from ALERTCAP_ORPHAN_SWEEP_MINUTES alone:
    a timer's schedule is fixed when the function is declared (at import). An invalid value
    falls back to every 5 minutes here and is reported by Settings.from_env (every run of
    the sweep then answers with the setting's name)."""
    raw = ((os.environ if env is None else env).get("ALERTCAP_ORPHAN_SWEEP_MINUTES")
           or "5").strip()
    minutes = int(raw) if raw.isdigit() and int(raw) in SWEEP_MINUTES else 5
    return "0 0 * * * *" if minutes == 60 else f"0 */{minutes} * * * *"


@cache
def load() -> Settings:
    """The process's settings, read once (tests call Settings.from_env directly)."""
    return Settings.from_env()
