"""CIM twin core: settings, CRS handling, database, errors; and the application (CLI, server)."""

__version__ = "0.1.0"
