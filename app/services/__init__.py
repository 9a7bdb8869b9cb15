"""Use cases the routers call. Keyword-only arguments; domain errors, never HTTP."""
