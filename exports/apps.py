from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Training-ready exports: policies, formats, splits, atomic files, `manage.py export`."""

    name = "exports"
    verbose_name = "Exports"
