"""The local ARM's views: one module per resource provider, each view
``async (server, request, params) -> response`` answering with ARM's shapes and errors."""
