"""The one service layer: every API (native and dialects), the CLI and the dashboard
call these functions.

Services are stateless singletons. Each function takes the session first (the caller,
an edge, owns the transaction: services never commit) and the current time as `now`
(time is a dependency). They raise `wafile.errors` and return `wafile.core` values.
"""
