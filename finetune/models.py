"""Finetune runs."""
