"""A local Azure Functions + Durable Functions host for `function_app.py`.

Stands in for Azure Functions Core Tools and the Durable Task extension on a developer
machine: loads the app through azure-functions metadata, serves its HTTP triggers, and
runs orchestrations with the Durable out-of-process protocol, keeping state in SQLite.
The app never imports this package.

Modules: `loader` (settings, host.json, function discovery and invocation), `keys`
(function/master/system keys), `store` (SQLite), `protocol` (codes, statuses, errors),
`replay` (orchestrator episodes, determinism, retries), `client` (client commands),
`workers` (dispatcher and activity workers), `mgmt_api` (the Durable HTTP management
API), `server` (aiohttp listeners, auth, logging of invocations), `__main__` (the CLI).
"""
