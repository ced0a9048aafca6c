"""The HTTP server: a small FastAPI app wired by dependencies."""
