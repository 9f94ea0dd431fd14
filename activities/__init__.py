"""Activity functions: thin adapters from Durable payloads to Azure SDK calls."""
