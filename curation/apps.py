from django.apps import AppConfig


class CurationConfig(AppConfig):
    """The workers' science: deduplication and agreement statistics, with their dashboards."""

    name = "curation"
    verbose_name = "Curation"
