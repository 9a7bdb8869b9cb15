"""Settings, errors and logging shared by the service."""
