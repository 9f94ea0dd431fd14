"""The checks: each looks at one thing a capture run would fail on and returns `Check`s,
each failed one with the exact fix (an `az` command or the setting to change).

Boundary: decisions only. Reads go through `arm.Arm` (or a fake with the same methods),
reachability through a `Probe` (a function: URL -> None when it answered, else why not);
settings come in as `Settings`. Nothing here sends, writes or raises past `guard`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from alertcap.doctor import permissions as perms
from alertcap.doctor.model import Check, fail, ok, warn
from alertcap.domain.validation import local_path_os
from alertcap.errors import AccessDenied, AlertcapError, ResourceNotFound, TransientAzureError
from alertcap.sdk.clients import parse_connection_string
from alertcap.settings import PUBLIC_ARM, Settings

AGENT_PUBLISHER = "Microsoft.Azure.NetworkWatcher"
AGENT_TYPES = {"linux": "NetworkWatcherAgentLinux", "windows": "NetworkWatcherAgentWindows"}
AGENT_EXTENSION_NAME = "AzureNetworkWatcherExtension"
AGENT_VERSION = "1.4"  # the version Network Watcher's docs and the run install
LIMIT_HEADROOM = 0.9  # warn once sessions reach 90% of the limit
PROPAGATION = ("Role assignments can take up to 10 minutes to apply: if you just made one, "
               "run the doctor again before changing anything.")
# Scheme, host and any secret-looking query value or key=value pair: never printed.
_SECRET = re.compile(r"((?:sig|accesskey|accountkey|code|key|token|secret)=)[^&;\s\"']+",
                     re.IGNORECASE)

Probe = Callable[[str], str | None]


class ArmReader(Protocol):
    def vm(self, vm_id: str) -> dict[str, Any]: ...
    def vms_in_group(self, group_id: str) -> list[dict[str, Any]]: ...
    def watcher(self, subscription: str, region: str) -> dict[str, Any] | None: ...
    def capture_count(self, watcher_id: str) -> int: ...
    def storage_account(self, account_id: str) -> dict[str, Any]: ...
    def permissions(self, scope: str) -> list[dict[str, Any]]: ...


def scrub(text: str) -> str:
    return _SECRET.sub(r"\1***", text)


def _part(resource_id: str, index: int) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[index] if len(parts) > index else ""


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def group_of(resource_id: str) -> str:
    return _part(resource_id, 3)


def sub_of(resource_id: str) -> str:
    return _part(resource_id, 1)


def guard(name: str, subject: str, call: Callable[[], list[Check]],
          settings: Settings | None = None) -> list[Check]:
    """Run one check; any exception becomes a failed check with its (scrubbed) message."""
    try:
        return call()
    except AccessDenied as exc:
        return [fail(name, subject, "access-denied", scrub(exc.message),
                     f"Grant the app's identity the alertcap roles on this scope "
                     f"({_assignee(settings)}). {PROPAGATION}")]
    except TransientAzureError as exc:
        return [fail(name, subject, "unavailable", scrub(exc.message),
                     "Azure did not answer in time or throttled the call: run the doctor "
                     "again; if it persists, check https://status.azure.com and the "
                     "ALERTCAP_ARM_ENDPOINT setting.")]
    except AlertcapError as exc:
        return [fail(name, subject, type(exc).__name__, scrub(exc.message), None)]
    except Exception as exc:  # isolation is the point: one broken check never stops the rest
        return [fail(name, subject, type(exc).__name__,
                     scrub(f"{type(exc).__name__}: {exc}")[:500], None)]


def _assignee(settings: Settings | None) -> str:
    client_id = settings.managed_identity_client_id if settings else None
    return f"--assignee {client_id}" if client_id else \
        "--assignee <the function app's managed identity principal id>"


# --- targets --------------------------------------------------------------------------

_VM_RE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                    r"Microsoft\.Compute/virtualMachines/[^/]+$", re.IGNORECASE)
_RG_RE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+$", re.IGNORECASE)


def classify_target(text: str) -> str | None:
    """"vm", "group", or None for something that is neither."""
    t = text.strip().rstrip("/")
    if ".." in t or "?" in t or "#" in t:
        return None
    if _VM_RE.fullmatch(t):
        return "vm"
    if _RG_RE.fullmatch(t):
        return "group"
    return None


def expand_targets(arm: ArmReader, targets: Sequence[str]
                   ) -> tuple[list[str], list[Check]]:
    """VM ids to check (a group's VMs listed through ARM, each VM once) and the checks
    about the targets themselves."""
    vms: dict[str, str] = {}
    checks: list[Check] = []
    if not targets:
        checks.append(warn("targets", "ALERTCAP_DOCTOR_TARGETS", "no-targets",
                           "no VMs or resource groups to check: only settings, storage and "
                           "channels were checked",
                           "Set ALERTCAP_DOCTOR_TARGETS to the VM ids and/or resource-group "
                           "ids alerts can name, comma-separated."))
    for raw in targets:
        kind = classify_target(raw)
        target = raw.strip().rstrip("/")
        if kind == "vm":
            vms.setdefault(target.lower(), target)
        elif kind == "group":
            def listing(group: str = target) -> list[Check]:
                found = arm.vms_in_group(group)
                for vm in found:
                    vm_id = str(vm.get("id") or "")
                    if vm_id:
                        vms.setdefault(vm_id.lower(), vm_id)
                if not found:
                    return [warn("targets", group, "empty-group",
                                 f"resource group {group_of(group)} holds no VMs",
                                 "Remove it from ALERTCAP_DOCTOR_TARGETS or check the "
                                 "subscription and group name.")]
                return [ok("targets", group, f"{len(found)} VM(s) in {group_of(group)}")]
            checks.extend(guard("targets", target, listing))
        else:
            checks.append(fail("targets", "ALERTCAP_DOCTOR_TARGETS", "bad-target:" + raw[:200],
                               f"not a VM or resource-group id: {raw[:200]!r}",
                               "Use /subscriptions/<sub>/resourceGroups/<group> or "
                               "/subscriptions/<sub>/resourceGroups/<group>/providers/"
                               "Microsoft.Compute/virtualMachines/<vm>."))
    return list(vms.values()), checks


# --- settings that contradict each other ------------------------------------------------


def settings_checks(s: Settings) -> list[Check]:
    checks: list[Check] = []
    n = "settings"
    account = name_of(s.storage_account_id) if s.storage_account_id else None
    if s.blob_connection_string and account:
        conn_account = parse_connection_string(s.blob_connection_string).get("accountname")
        if conn_account and conn_account.lower() != account.lower():
            checks.append(fail(
                n, "ALERTCAP_BLOB_CONNECTION_STRING", "blob-account-mismatch",
                f"the blob connection string is for account {conn_account}, but captures "
                f"are written to {account}: the summary could not read them",
                "Give ALERTCAP_BLOB_CONNECTION_STRING for the capture account, or leave it "
                "empty so the managed identity reads the blobs."))
    if s.blob_connection_string and s.arm_endpoint == PUBLIC_ARM:
        checks.append(warn(
            n, "ALERTCAP_BLOB_CONNECTION_STRING", "account-key-in-settings",
            "an account key sits in the app settings while the app runs against Azure",
            "Remove ALERTCAP_BLOB_CONNECTION_STRING: the managed identity reads the capture "
            "blobs (Storage Blob Data Reader) and signs read links itself."))
    if s.ca_bundle and s.arm_endpoint == PUBLIC_ARM:
        checks.append(warn(
            n, "ALERTCAP_CA_BUNDLE", "ca-bundle-with-public-arm",
            "a private CA bundle replaces the public trust store for management.azure.com",
            "Remove ALERTCAP_CA_BUNDLE unless a TLS-inspecting proxy needs it."))
    if s.email_connection_string and s.email_endpoint:
        checks.append(warn(
            n, "ALERTCAP_EMAIL_ENDPOINT", "two-email-services",
            "both an email connection string and an endpoint are set; the connection "
            "string (an access key) wins and the identity is not used",
            "Keep one: ALERTCAP_EMAIL_ENDPOINT (managed identity) in Azure."))
    if not s.policy.install_agent and s.capture.local_file_path is None \
            and not s.storage_account_id:
        checks.append(fail(
            n, "ALERTCAP_STORAGE_ACCOUNT_ID", "no-capture-destination",
            "captures have nowhere to go: no storage account and no local file path",
            "Set ALERTCAP_STORAGE_ACCOUNT_ID to a Standard storage account in the VMs' "
            "region."))
    if not s.doctor_state_blob and not _derived_state_blob(s):
        checks.append(warn(
            n, "ALERTCAP_DOCTOR_STATE_BLOB", "no-doctor-state",
            "the scheduled doctor has nowhere to remember what it notified: every run will "
            "email every problem again",
            "Set ALERTCAP_DOCTOR_STATE_BLOB to a blob URL in a container the identity may "
            "write (e.g. https://<host account>.blob.core.windows.net/alertcap-doctor/"
            "state.json)."))
    if not checks:
        checks.append(ok(n, "app settings", "no settings contradict each other"))
    return checks


def _derived_state_blob(s: Settings) -> str | None:
    if not s.blob_connection_string:
        return None
    endpoint = parse_connection_string(s.blob_connection_string).get("blobendpoint")
    return f"{endpoint.rstrip('/')}/alertcap-doctor/state.json" if endpoint else None


def state_blob_url(s: Settings) -> str | None:
    return s.doctor_state_blob or _derived_state_blob(s)


def invalid_settings_checks(problems: Sequence[str]) -> list[Check]:
    """Settings.from_env refused the settings: one failed check per problem it named."""
    checks = []
    for problem in problems:
        setting = (re.match(r"(ALERTCAP_[A-Z_]+|AZURE_[A-Z_]+)", problem)
                   or re.search(r"(ALERTCAP_[A-Z_]+)", problem))
        subject = setting.group(1) if setting else "app settings"
        checks.append(fail("settings", subject, "invalid:" + problem[:120], scrub(problem),
                           f"Fix {subject} in the app settings (see "
                           "local.settings.json.example for every setting and its range)."))
    return checks


# --- VM: agent, local path ---------------------------------------------------------------


def vm_os(vm: dict[str, Any]) -> str:
    props = vm.get("properties") or {}
    return str(((props.get("storageProfile") or {}).get("osDisk") or {}).get("osType")
               or "Linux").lower()


def _agent(vm: dict[str, Any]) -> dict[str, Any] | None:
    types = {t.lower() for t in AGENT_TYPES.values()}
    for ext in vm.get("resources") or []:
        props = ext.get("properties") or {}
        if (str(props.get("publisher", "")).lower() == AGENT_PUBLISHER.lower()
                and str(props.get("type", "")).lower() in types):
            return dict(ext)
    return None


def _version(text: str | None) -> tuple[int, ...]:
    nums = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in nums[:2]) if nums else (0,)


def _install_cmd(vm_id: str, agent_type: str) -> str:
    return (f"az vm extension set --subscription {sub_of(vm_id)} --resource-group "
            f"{group_of(vm_id)} --vm-name {name_of(vm_id)} --name {agent_type} "
            f"--publisher {AGENT_PUBLISHER} --version {AGENT_VERSION}")


def _reach_cmd(vm_id: str, os_type: str) -> str:
    if os_type == "windows":
        script = ("Test-NetConnection 168.63.129.16 -Port 80; "
                  "Test-NetConnection 169.254.169.254 -Port 80")
        command = "RunPowerShellScript"
    else:
        script = ("curl -s -m 5 -o /dev/null -w 'wireserver %{http_code}\\n' "
                  "http://168.63.129.16/?comp=versions; curl -s -m 5 -H Metadata:true "
                  "-o /dev/null -w 'imds %{http_code}\\n' "
                  "'http://169.254.169.254/metadata/instance?api-version=2021-02-01'")
        command = "RunShellScript"
    return (f"az vm run-command invoke --subscription {sub_of(vm_id)} --resource-group "
            f"{group_of(vm_id)} --name {name_of(vm_id)} --command-id {command} "
            f"--scripts \"{script}\"")


def agent_checks(vm_id: str, vm: dict[str, Any], s: Settings) -> list[Check]:
    n = "agent"
    os_type = vm_os(vm)
    wanted = AGENT_TYPES.get(os_type, AGENT_TYPES["linux"])
    ext = _agent(vm)
    if ext is None:
        if s.policy.install_agent:
            return [ok(n, vm_id, f"not installed; the first run installs {wanted} "
                                 "(ALERTCAP_INSTALL_AGENT=true)")]
        return [fail(n, vm_id, "agent-missing",
                     f"the Network Watcher agent ({wanted}) is not installed on "
                     f"{name_of(vm_id)}: a capture would fail",
                     f"{_install_cmd(vm_id, wanted)}\n"
                     "or set ALERTCAP_INSTALL_AGENT=true (the identity then needs "
                     "virtualMachines/extensions/write)")]
    props = ext.get("properties") or {}
    found_type = str(props.get("type"))
    state = str(props.get("provisioningState") or "Succeeded")
    version = props.get("typeHandlerVersion")
    checks: list[Check] = []
    if found_type.lower() != wanted.lower():
        checks.append(fail(n, vm_id, "agent-wrong-os",
                           f"{found_type} is installed on a {os_type} VM; it needs {wanted}",
                           f"az vm extension delete --subscription {sub_of(vm_id)} "
                           f"--resource-group {group_of(vm_id)} --vm-name {name_of(vm_id)} "
                           f"--name {ext.get('name') or AGENT_EXTENSION_NAME}\n"
                           f"{_install_cmd(vm_id, wanted)}"))
    if state.lower() != "succeeded":
        checks.append(fail(
            n, vm_id, f"agent-state-{state.lower()}",
            f"the Network Watcher agent on {name_of(vm_id)} is {state} (not Succeeded). A "
            "failed or stuck extension usually means the VM cannot reach the Azure wire "
            "server 168.63.129.16 or the metadata service 169.254.169.254 (NSG outbound "
            "rules, a route table, a proxy or the guest firewall)",
            f"{_reach_cmd(vm_id, os_type)}\nthen, once both answer, reinstall:\n"
            f"{_install_cmd(vm_id, wanted)}"))
    if _version(version) < _version(AGENT_VERSION):
        checks.append(fail(
            n, vm_id, "agent-outdated",
            f"the Network Watcher agent on {name_of(vm_id)} is version {version}; captures "
            f"need {AGENT_VERSION} or later",
            _install_cmd(vm_id, wanted)))
    if not checks:
        checks.append(ok(n, vm_id, f"{found_type} {version}, {state}, {os_type} VM"))
    return checks


def local_path_checks(vm_id: str, vm: dict[str, Any], s: Settings) -> list[Check]:
    path = s.capture.local_file_path
    if path is None:
        return []
    path_os, os_type = local_path_os(path), vm_os(vm)
    if path_os is not None and path_os != os_type:
        return [fail("settings", vm_id, "local-path-os",
                     f"ALERTCAP_CAPTURE_LOCAL_FILE_PATH is a {path_os} path but "
                     f"{name_of(vm_id)} runs {os_type}",
                     "Set ALERTCAP_CAPTURE_LOCAL_FILE_PATH for the VMs' OS (/var/captures/"
                     "<name>.cap on Linux, C:\\Captures\\<name>.cap on Windows) or empty.")]
    return []


# --- watcher and capture limit -----------------------------------------------------------


def watcher_checks(arm: ArmReader, subscription: str, region: str
                   ) -> tuple[dict[str, Any] | None, list[Check]]:
    subject = f"/subscriptions/{subscription}/locations/{region}"
    holder: list[dict[str, Any] | None] = [None]

    def look() -> list[Check]:
        w = arm.watcher(subscription, region)
        holder[0] = w
        if w is None:
            return [fail("watcher", subject, "watcher-missing",
                         f"no Network Watcher in region {region}: every capture there fails",
                         f"az network watcher configure --subscription {subscription} "
                         f"--resource-group NetworkWatcherRG --locations {region} "
                         "--enabled true")]
        return [ok("watcher", subject, f"{w.get('name')} in {group_of(str(w.get('id')))}")]

    checks = guard("watcher", subject, look)
    return holder[0], checks


def limit_checks(arm: ArmReader, watcher: dict[str, Any], s: Settings) -> list[Check]:
    wid = str(watcher.get("id"))
    limit = s.policy.capture_limit
    region = str(watcher.get("location") or "")

    def count() -> list[Check]:
        used = arm.capture_count(wid)
        fix = (f"az network watcher packet-capture list --subscription {sub_of(wid)} "
               f"--location {region} -o table\naz network watcher packet-capture delete "
               f"--subscription {sub_of(wid)} --location {region} --name <finished capture>"
               f"\nor raise ALERTCAP_CAPTURE_LIMIT (now {limit}, Azure allows 10000)")
        if used >= limit:
            return [fail("capture-limit", wid, "limit-reached",
                         f"{used} capture sessions on {name_of(wid)}: the limit of {limit} is "
                         "reached, the next capture is refused", fix)]
        if used >= LIMIT_HEADROOM * limit:
            return [warn("capture-limit", wid, "limit-near",
                         f"{used} of {limit} capture sessions in use on {name_of(wid)}", fix)]
        return [ok("capture-limit", wid, f"{used} of {limit} capture sessions in use")]

    return guard("capture-limit", wid, count, s)


# --- capture storage account ---------------------------------------------------------------

_TLS_ORDER = {"tls1_0": 0, "tls1_1": 1, "tls1_2": 2, "tls1_3": 3}


def storage_checks(arm: ArmReader, s: Settings, probe: Probe
                   ) -> tuple[str | None, list[Check]]:
    """(the account's region, checks). Network Watcher writes the capture with SAS, from
    the VM, into a Standard account in the VM's region."""
    sid = s.storage_account_id
    if not sid:
        return None, []
    name, group = name_of(sid), group_of(sid)
    update = (f"az storage account update --subscription {sub_of(sid)} --resource-group "
              f"{group} --name {name}")
    found: dict[str, Any] = {}

    def read() -> list[Check]:
        try:
            acct = arm.storage_account(sid)
        except ResourceNotFound as exc:
            return [fail("storage", sid, "storage-missing", scrub(exc.message),
                         "Set ALERTCAP_STORAGE_ACCOUNT_ID to an existing Standard account in "
                         f"the VMs' region, or create it: az storage account create "
                         f"--resource-group {group} --name {name} --location <VM region> "
                         "--sku Standard_LRS --min-tls-version TLS1_2")]
        found.update(acct)
        props = acct.get("properties") or {}
        checks: list[Check] = []
        if props.get("allowSharedKeyAccess") is False:
            checks.append(fail("storage", sid, "shared-key-disabled",
                               f"{name} refuses shared-key access: Network Watcher writes "
                               "captures with a SAS, so every capture to it fails",
                               f"{update} --allow-shared-key-access true"))
        tls = str(props.get("minimumTlsVersion") or "TLS1_0")
        if _TLS_ORDER.get(tls.lower(), 0) < _TLS_ORDER["tls1_2"]:
            checks.append(fail("storage", sid, "tls-minimum",
                               f"{name} accepts {tls}; require TLS 1.2 or later",
                               f"{update} --min-tls-version TLS1_2"))
        sku = acct.get("sku") or {}
        tier = str(sku.get("tier") or str(sku.get("name") or "Standard").split("_")[0])
        if tier.lower() != "standard":
            checks.append(fail("storage", sid, "storage-premium",
                               f"{name} is {sku.get('name')}: Network Watcher needs a "
                               "Standard account",
                               "Create a Standard account (az storage account create ... "
                               "--sku Standard_LRS --min-tls-version TLS1_2) and set "
                               "ALERTCAP_STORAGE_ACCOUNT_ID to it."))
        acls = props.get("networkAcls") or {}
        if str(props.get("publicNetworkAccess") or "Enabled").lower() == "disabled" or \
                str(acls.get("defaultAction") or "Allow").lower() == "deny":
            checks.append(warn("storage", sid, "storage-firewall",
                               f"{name}'s firewall denies by default: the VMs' subnets must "
                               "be allowed, or Network Watcher cannot upload the capture",
                               f"az storage account network-rule add --subscription "
                               f"{sub_of(sid)} --resource-group {group} --account-name "
                               f"{name} --vnet-name <VM vnet> --subnet <VM subnet>"))
        blob = str((props.get("primaryEndpoints") or {}).get("blob") or "")
        if blob:
            why = probe(blob)
            if why is not None:
                checks.append(fail("storage", sid, "storage-unreachable",
                                   f"{name}'s blob endpoint did not answer: {scrub(why)}",
                                   "Check the account's firewall, private endpoint DNS and "
                                   "the app's outbound network (VNet integration)."))
        if not checks:
            checks.append(ok("storage", sid, f"{name}: {sku.get('name')}, minimum {tls}, "
                                             "shared keys allowed, blob endpoint reachable"))
        return checks

    checks = guard("storage", sid, read, s)
    location = found.get("location")
    return (str(location).replace(" ", "").lower() if location else None), checks


def storage_region_checks(vm_id: str, vm_region: str, storage_region: str | None,
                          s: Settings) -> list[Check]:
    if storage_region is None or not s.storage_account_id or storage_region == vm_region:
        return []
    return [fail("storage", vm_id, "storage-region",
                 f"{name_of(vm_id)} is in {vm_region} but the capture account "
                 f"{name_of(s.storage_account_id)} is in {storage_region}: Network Watcher "
                 "only writes to an account in the VM's region",
                 f"Set ALERTCAP_STORAGE_ACCOUNT_ID to a Standard account in {vm_region} "
                 "(one app per region if VMs span regions).")]


# --- effective permissions ----------------------------------------------------------------


def permission_checks(arm: ArmReader, scope: str, kinds: Sequence[str], s: Settings,
                      data_actions: Sequence[str] = (), extra_actions: Sequence[str] = (),
                      extra_role: str = "") -> list[Check]:
    def look() -> list[Check]:
        blocks = arm.permissions(scope)
        lacking: dict[str, list[str]] = {}
        for kind in kinds:
            gone = perms.missing(blocks, perms.ACTIONS[kind])
            if gone:
                lacking[perms.ROLE_HINT[kind]] = gone
        gone = perms.missing(blocks, extra_actions)
        gone_data = perms.missing(blocks, data_actions, data=True)
        if gone or gone_data:
            lacking[extra_role] = gone + [f"{a} (data action)" for a in gone_data]
        if not lacking:
            what = ", ".join(kinds) + (", blob data" if data_actions else "")
            return [ok("permissions", scope, f"the identity holds every action the runs "
                                             f"need here ({what})")]
        lines = []
        flat = sorted(a for acts in lacking.values() for a in acts)
        for role in lacking:
            role_arg = f'"{extra_role}"' if role == extra_role else "<alertcap role name>"
            lines.append(f"az role assignment create {_assignee(s)} --role {role_arg} "
                         f"--scope {scope}   # {role}")
        return [fail("permissions", scope, "missing:" + ",".join(a.lower() for a in flat),
                     f"the identity lacks {len(flat)} action(s) the runs need here: "
                     + ", ".join(flat),
                     "\n".join(lines) + "\n(or redeploy with this scope listed in the "
                     "template's parameters) " + PROPAGATION)]

    return guard("permissions", scope, look, s)
