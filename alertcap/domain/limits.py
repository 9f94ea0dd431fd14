"""Every request limit and pattern, written once.

Validation (`domain/validation.py`), VM ids (`domain/vm.py`), settings, the HTTP routes
and the published OpenAPI document all read these names, so the door, the settings and the
document cannot disagree. Patterns are written for `re.fullmatch` with `re.ASCII`: `$`
would match before a trailing newline, and `\\d` or `\\w` would accept other scripts' digits
and letters, which Azure refuses later.
"""

from __future__ import annotations

# --- ARM resource ids -----------------------------------------------------------------
# ARM rules: a subscription is a GUID; a resource group is 1-90 of letters, digits,
# _ - . ( ) not ending in a period; a VM name 1-64 of letters, digits, _ - . (Linux rules,
# the wider of the two).
_HEX = "[0-9a-fA-F]"
SUBSCRIPTION_PATTERN = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
RESOURCE_GROUP_PATTERN = r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]"
VM_NAME_PATTERN = r"[A-Za-z0-9_][-A-Za-z0-9_.]{0,63}"
VM_ID_PATTERN = (rf"/subscriptions/(?P<sub>{SUBSCRIPTION_PATTERN})"
                 rf"/resourceGroups/(?P<rg>{RESOURCE_GROUP_PATTERN})"
                 rf"/providers/Microsoft\.Compute/virtualMachines/(?P<name>{VM_NAME_PATTERN})")
MAX_RESOURCE_ID_LENGTH = 400
# Scale sets (names as VMs') and their instances as activity-log and resource-health
# alerts name them: .../virtualMachineScaleSets/{name}/virtualMachines/{instanceId}.
VMSS_ID_PATTERN = (rf"/subscriptions/(?P<sub>{SUBSCRIPTION_PATTERN})"
                   rf"/resourceGroups/(?P<rg>{RESOURCE_GROUP_PATTERN})"
                   rf"/providers/Microsoft\.Compute/virtualMachineScaleSets/(?P<name>{VM_NAME_PATTERN})")
VMSS_INSTANCE_PATTERN = r"[0-9]{1,9}"
VMSS_INSTANCE_ID_PATTERN = VMSS_ID_PATTERN + rf"/virtualMachines/(?P<iid>{VMSS_INSTANCE_PATTERN})"
# A scope lists instance ids; Azure's own scale sets hold at most 1,000 instances.
MAX_SCOPE_INSTANCES = 1000

# Our instance ids: alertcap-<slug of the VM name>-<12 hex of the VM id's hash>.
INSTANCE_ID_PATTERN = r"alertcap-[a-z0-9-]{1,40}-[0-9a-f]{12}"

# An Azure region's programmatic name: "eastus", "westeurope", "usgovvirginia".
LOCATION_PATTERN = r"[a-z0-9]{1,40}"
MAX_REASON_LENGTH = 500

# --- capture options (Network Watcher's own limits) -----------------------------------
MAX_TIME_LIMIT_SECONDS = 18000          # a non-continuous session lasts at most 5 hours
MAX_BYTES_PER_PACKET = 65535            # 0 = the whole packet
MAX_TOTAL_BYTES = 4294967295            # totalBytesPerSession is a uint32
MAX_LOCAL_PATH_LENGTH = 250
# Linux agents write only under /var/captures; Windows paths are drive-absolute.
LINUX_LOCAL_PATH_PATTERN = r"/var/captures(/[A-Za-z0-9_.-]+)+\.cap"
WINDOWS_LOCAL_PATH_PATTERN = r"[A-Za-z]:(\\[A-Za-z0-9_. -]+)+\.cap"

# --- capture filters ------------------------------------------------------------------
MAX_FILTERS = 10
MAX_FILTER_VALUE_LENGTH = 200
# Network Watcher's filter forms: one value, a range "a-b" or a list "a;b;c".
PORT_PATTERN = r"[0-9]{1,5}"
# Every port item and every CIDR block an address range expands to becomes one BPF term;
# past a few hundred terms tcpdump's optimiser needs memory that grows without bound.
MAX_FILTER_TERMS = 256

# --- request bodies -------------------------------------------------------------------
DEFAULT_MAX_BODY_BYTES = 262144
MIN_MAX_BODY_BYTES = 1024
MAX_MAX_BODY_BYTES = 10 * 1024 * 1024
