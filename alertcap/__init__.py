"""alertcap: alert-triggered packet capture for Azure VMs (the domain; no Functions imports)."""
