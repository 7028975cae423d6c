from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    """LoRA finetunes on an export; torch and friends are imported only inside the worker."""

    name = "finetune"
    verbose_name = "Finetune"
