from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Training-ready exports (filled by the export issue)."""

    name = "exports"
