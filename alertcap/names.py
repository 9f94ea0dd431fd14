"""Function names: the contract between orchestrators, activities and starters.

Durable schedules functions by name; a typo here would only show at run time, so every
name is written once, here.
"""

ORCHESTRATOR = "capture_orchestrator"

RESOLVE_WATCHER = "resolve_watcher"
ENSURE_AGENT = "ensure_agent"
CLEAR_STALE_CAPTURE = "clear_stale_capture"
CHECK_LIMIT = "check_limit"
CREATE_CAPTURE = "create_capture"
GET_CAPTURE_STATUS = "get_capture_status"
STOP_CAPTURE = "stop_capture"
SUMMARISE_CAPTURE = "summarise_capture"
NOTIFY = "notify"

ACTIVITIES = (RESOLVE_WATCHER, ENSURE_AGENT, CLEAR_STALE_CAPTURE, CHECK_LIMIT, CREATE_CAPTURE,
              GET_CAPTURE_STATUS, STOP_CAPTURE, SUMMARISE_CAPTURE, NOTIFY)

# External event an operator raises to end a capture early.
STOP_EVENT = "stop"
