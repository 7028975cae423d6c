from django.apps import AppConfig
from django.db.backends.signals import connection_created


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        from labeling.aggregates import register_sqlite_functions

        # A database function, not a domain signal: SQLite connections get the median.
        connection_created.connect(register_sqlite_functions, dispatch_uid="labeling.median")
