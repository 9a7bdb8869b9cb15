"""FastAPI routers: HTTP only. Parse, call one service function, return a schema."""
