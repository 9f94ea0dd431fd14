"""Orchestrator functions: deterministic generators over the Durable context."""
