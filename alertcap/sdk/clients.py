"""The only place that knows endpoints: Azure SDK clients built from Settings.

One credential (DefaultAzureCredential: the managed identity in Azure; locally the same
class, pointed at the local identity endpoint by IDENTITY_ENDPOINT/IDENTITY_HEADER), one
ARM endpoint (public, sovereign or local), one CA bundle for the local stack's
self-signed certificate. Clients are built once per process and per subscription.
Activities receive a `Clients`; tests hand them fakes with the same attributes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from alertcap.errors import ConfigError
from alertcap.settings import Settings

# Generic-resource api-version for virtual machines and their extensions (we read VMs
# through azure-mgmt-resource rather than pulling in azure-mgmt-compute).
COMPUTE_API_VERSION = "2024-07-01"

# Every call is bounded, so every activity is: a dependency that does not answer costs
# seconds, not minutes (azure-core's defaults retry 10 times with up to 120 s between; the
# storage SDK's wait 15 s, 18 s, 24 s...). The orchestration retries whole activities on
# top of this, on durable timers.
TIMEOUTS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60}
ARM_RETRY: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.5,
                             "retry_backoff_max": 10}
STORAGE_RETRY: dict[str, Any] = {"retry_total": 2, "initial_backoff": 1, "increment_base": 2}


def parse_connection_string(text: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in text.split(";") if "=" in p)
    return {k.strip().lower(): v.strip() for k, v in parts}


@dataclass
class Clients:
    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _network: dict[str, Any] = field(default_factory=dict, repr=False)
    _resources: dict[str, Any] = field(default_factory=dict, repr=False)
    _credential: Any = None
    _email: Any = None

    def _common(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "base_url": self.settings.arm_endpoint,
            "credential_scopes": [self.settings.arm_scope],
            "polling_interval": self.settings.lro_polling_seconds,
            **TIMEOUTS, **ARM_RETRY,
        }
        if self.settings.ca_bundle:
            kwargs["connection_verify"] = self.settings.ca_bundle
        return kwargs

    @property
    def credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential(
                    managed_identity_client_id=self.settings.managed_identity_client_id)
            return self._credential

    def network(self, subscription_id: str) -> Any:
        from azure.mgmt.network import NetworkManagementClient

        return self._arm_client(self._network, NetworkManagementClient, subscription_id)

    def resources(self, subscription_id: str) -> Any:
        from azure.mgmt.resource.resources import ResourceManagementClient

        return self._arm_client(self._resources, ResourceManagementClient, subscription_id)

    def _arm_client(self, cache: dict[str, Any], cls: Any, subscription_id: str) -> Any:
        credential = self.credential
        with self._lock:
            if subscription_id not in cache:
                cache[subscription_id] = cls(credential, subscription_id, **self._common())
            return cache[subscription_id]

    def email(self) -> Any:
        s = self.settings
        with self._lock:
            if self._email is None:
                from azure.communication.email import EmailClient

                verify = {"connection_verify": s.ca_bundle} if s.ca_bundle else {}
                verify = {**verify, **TIMEOUTS, **ARM_RETRY}
                if s.email_connection_string:
                    self._email = EmailClient.from_connection_string(
                        s.email_connection_string, **verify)
                elif s.email_endpoint:
                    self._email = EmailClient(s.email_endpoint, self.credential, **verify)
                else:
                    raise ConfigError("no email service: set ALERTCAP_EMAIL_CONNECTION_STRING "
                                      "or ALERTCAP_EMAIL_ENDPOINT")
            return self._email

    # --- blobs: the capture file Network Watcher wrote --------------------------------

    def _storage_credential(self) -> Any:
        conn = self.settings.blob_connection_string
        if conn:
            parts = parse_connection_string(conn)
            return {"account_name": parts.get("accountname", ""),
                    "account_key": parts.get("accountkey", "")}
        return self.credential

    def _storage_options(self) -> dict[str, Any]:
        from azure.storage.blob import ExponentialRetry

        return {"retry_policy": ExponentialRetry(**STORAGE_RETRY), **TIMEOUTS}

    def blob(self, blob_url: str) -> Any:
        from azure.storage.blob import BlobClient

        return BlobClient.from_blob_url(blob_url, credential=self._storage_credential(),
                                        **self._storage_options())

    def container_of(self, blob_url: str) -> Any:
        """The container a blob (or a folder of blobs) is in: for listing a folder."""
        from azure.storage.blob import ContainerClient

        blob = self.blob(blob_url)
        return ContainerClient.from_container_url(
            blob.url[: blob.url.index("/" + blob.container_name + "/")] + "/"
            + blob.container_name, credential=self._storage_credential(),
            **self._storage_options())

    def container(self, container_url: str) -> Any:
        """Any blob container of the capture storage account (standby ring folders)."""
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_container_url(
            container_url, credential=self._storage_credential(), **self._storage_options())

    def records(self) -> Any:
        """The container that keeps run records (ALERTCAP_RUNS_CONTAINER_URL)."""
        from azure.storage.blob import ContainerClient

        url = self.settings.runs_container_url
        if not url:
            raise ConfigError("run records are not kept: set ALERTCAP_RUNS_CONTAINER_URL")
        return ContainerClient.from_container_url(url, credential=self._storage_credential(),
                                                  **self._storage_options())

    def read_link(self, blob_url: str, hours: int) -> tuple[str, str]:
        """A read-only link to the blob that expires: account-key SAS where we hold the key
        (local Azurite), user delegation SAS signed by the managed identity in Azure."""
        from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

        client = self.blob(blob_url)
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)
        conn = self.settings.blob_connection_string
        common = {"account_name": client.account_name, "container_name": client.container_name,
                  "blob_name": client.blob_name, "permission": BlobSasPermissions(read=True),
                  "expiry": expires}
        if conn:
            key = parse_connection_string(conn).get("accountkey", "")
            sas = generate_blob_sas(account_key=key, **common)
        else:
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(blob_url))
            service = BlobServiceClient(origin, credential=self.credential)
            start = datetime.now(UTC) - timedelta(minutes=5)
            delegation = service.get_user_delegation_key(start, expires)
            sas = generate_blob_sas(user_delegation_key=delegation, **common)
        return f"{blob_url}?{sas}", expires.isoformat().replace("+00:00", "Z")


_clients: Clients | None = None
_clients_lock = threading.Lock()


def get_clients() -> Clients:
    """The process's clients, built on first use from the process's settings."""
    global _clients
    with _clients_lock:
        if _clients is None:
            from alertcap import settings

            _clients = Clients(settings.load())
        return _clients
