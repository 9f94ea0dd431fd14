"""Local receivers for the notification channels (Teams, Slack, PagerDuty, signed webhook).

Boundary: the local stack's stand-in for four external services, never deployed and
never imported by the app. ``start()`` runs it in the caller's event loop (tests, or a
``localdev up`` that hosts it in-process); ``python -m localdev.receivers`` runs it as a
process (see ``__main__``). Either way ``<state>/receivers.json`` names the URLs to
configure the app with.
"""

from .runner import Running, start


def main() -> None:
    """``python -m localdev.receivers`` as a function (argv from ``sys.argv``)."""
    from .__main__ import main as _main

    _main()


__all__ = ["Running", "main", "start"]
