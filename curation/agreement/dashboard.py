"""The dashboard's read model: a stored report turned into charts and table rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.safestring import SafeString

from curation import charts
from curation.models import AgreementReport


@dataclass
class Dashboard:
    report: AgreementReport
    summary: list[tuple[str, Any]]
    versions: list[dict[str, Any]]
    pair_names: list[str]
    pair_rows: list[tuple[str, list[tuple[float | None, int]]]]
    charts: dict[str, SafeString] = field(default_factory=dict)


def _summary(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) rows of the overall section; None shows as n/a."""
    overall = data["overall"]
    keys = (
        ["alpha_nominal", "alpha_interval", "fleiss_kappa", "percent_agreement", "tie_rate",
         "both_bad_rate"]
        if data["kind"] == "pairwise"
        else ["alpha_ordinal", "alpha_interval", "percent_agreement"]
    )  # fmt: skip
    return [(key.replace("_", " "), overall[key]) for key in keys]


def _version_label(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"


def build(report: AgreementReport) -> Dashboard:
    """Everything the page shows, from one stored report."""
    data = report.data
    alpha_key = "alpha_nominal" if data["kind"] == "pairwise" else "alpha_ordinal"
    names = [person["name"] for person in data["pairs"]["annotators"]]
    pair_rows = [
        (name, list(zip(kappas, shared, strict=True)))
        for name, kappas, shared in zip(
            names, data["pairs"]["kappa"], data["pairs"]["shared_items"], strict=True
        )
    ]
    dashboard = Dashboard(report, _summary(data), data["by_guideline"], names, pair_rows)
    dashboard.charts = {
        "progress": charts.line_chart(
            [(day["date"], day["total"]) for day in data["progress"]], title="Annotations so far"
        ),
        "versions": charts.bar_chart(
            [(_version_label(v["version"]), v[alpha_key]) for v in data["by_guideline"]],
            title="Krippendorff's alpha by guideline version", low=-1.0,
        ),
        "pairs": charts.heatmap(names, data["pairs"]["kappa"], title="Cohen's kappa per pair"),
        "distribution": charts.bar_chart(
            _shares(data["distribution"]), title="Label distribution"
        ),
        "position": charts.bar_chart(
            [(p["name"], p.get("left_rate")) for p in data["per_annotator"]],
            title="Share of left-side picks (fair: 0.5)",
        ),
    }  # fmt: skip
    return dashboard


def _shares(counts: dict[str, int]) -> list[tuple[str, float | None]]:
    total = sum(counts.values())
    return [(label, count / total if total else None) for label, count in counts.items()]
