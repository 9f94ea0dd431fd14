"""The local stack: stand-ins for the Azure services alertcap talks to. Never deployed."""
