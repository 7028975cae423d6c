from django.apps import AppConfig


class CurationConfig(AppConfig):
    """The workers' science: deduplication and agreement statistics, with their dashboards."""

    name = "curation"
    verbose_name = "Curation"

    def ready(self) -> None:
        # Deduplicate new items after each import. labeling must not import curation, so it
        # sends a signal of its own and curation listens.
        from curation.dedup.hooks import connect

        connect()
