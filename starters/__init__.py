"""HTTP starters: the alert webhook and the manual start/stop routes."""
