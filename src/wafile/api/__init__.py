"""The HTTP edge: app factory, auth, errors, middleware and routers."""
