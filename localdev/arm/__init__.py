"""Local Azure Resource Manager endpoint for Network Watcher, packet captures and VMs."""
