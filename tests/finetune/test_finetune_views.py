"""The finetune pages and API: admins only (others 403, outsiders 404), launch, poll, cancel."""

import pytest
from django.urls import reverse

from finetune import services
from finetune.models import FinetuneRun
from finetune.paths import models_dir
from tests.finetune.test_runs import CPU, dpo_export, models_root, queued_run  # noqa: F401

SLUG = "pair-demo"


@pytest.fixture
def run(pairwise_project, dpo_export):  # noqa: F811 - the fixture imported above
    return queued_run(pairwise_project, dpo_export, max_steps="4")


def _pages(run):
    kwargs = {"slug": SLUG, "pk": run.pk}
    return [
        ("get", reverse("finetune:runs", kwargs={"slug": SLUG})),
        ("get", reverse("finetune:launch", kwargs={"slug": SLUG})),
        ("post", reverse("finetune:estimate", kwargs={"slug": SLUG})),
        ("get", reverse("finetune:run", kwargs=kwargs)),
        ("post", reverse("finetune:cancel", kwargs=kwargs)),
    ]


def _endpoints(run):
    kwargs = {"slug": SLUG, "pk": run.pk}
    return [
        ("get", reverse("finetune-api:run-list", kwargs={"slug": SLUG})),
        ("post", reverse("finetune-api:run-list", kwargs={"slug": SLUG})),
        ("post", reverse("finetune-api:run-estimate", kwargs={"slug": SLUG})),
        ("get", reverse("finetune-api:run-detail", kwargs=kwargs)),
        ("post", reverse("finetune-api:run-cancel", kwargs=kwargs)),
    ]


@pytest.mark.parametrize(
    ("actor", "status"), [("outsider", 404), ("reviewer", 403), ("annotator", 403)]
)
def test_only_admins_reach_the_pages_and_the_api(client, request, run, actor, status):
    client.force_login(request.getfixturevalue(actor))
    for method, url in [*_pages(run), *_endpoints(run)]:
        response = getattr(client, method)(url, content_type="application/json")
        assert (url, response.status_code) == (url, status)
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("queued", False)
    assert FinetuneRun.objects.count() == 1


def test_anonymous_callers_are_sent_to_log_in_or_answered_401(client, run):
    for method, url in _pages(run):
        response = getattr(client, method)(url)
        assert (url, response.status_code, response["Location"].split("?")[0]) == (
            url, 302, reverse("login"),
        )  # fmt: skip
    for method, url in _endpoints(run):
        assert (url, getattr(client, method)(url).status_code) == (url, 401)


def test_a_run_in_another_project_is_a_404_for_its_admin(client, queue_admin, sft_project, run):
    client.force_login(queue_admin)
    url = reverse("finetune:run", kwargs={"slug": sft_project.slug, "pk": run.pk})
    assert client.get(url).status_code == 404
    api = reverse("finetune-api:run-detail", kwargs={"slug": sft_project.slug, "pk": run.pk})
    assert client.get(api).status_code == 404


# Pages ----------------------------------------------------------------------------------------


def test_the_runs_page_lists_exports_to_train_on_and_runs(client, queue_admin, run, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    page = client.get(reverse("finetune:runs", kwargs={"slug": SLUG}))
    assert page.status_code == 200
    content = page.content.decode()
    assert f'href="/p/{SLUG}/finetune/new/?export={dpo_export.pk}"' in content
    assert f'href="/p/{SLUG}/finetune/{run.pk}/"' in content
    assert f'href="/p/{SLUG}/finetune/"' in content  # the admin's Finetune tab


def test_the_launch_form_shows_the_estimate_next_to_the_device(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    page = client.get(
        reverse("finetune:launch", kwargs={"slug": SLUG}),
        {"export": dpo_export.pk, "base_model": "tiny"},
    )
    assert page.status_code == 200
    plan = services.plan_run(
        project=dpo_export.project,
        export_id=dpo_export.pk,
        method="dpo",
        base_model="tiny",
        values={},
    )
    content = page.content.decode()
    assert f"<th>{services.gib(plan.estimate.total)}</th>" in content
    assert '<td class="device">configured device, 8.0 GiB</td>' in content
    assert '<option value="dpo" selected>' in content
    assert "Fits." in content


def test_the_estimate_partial_names_bad_fields(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    url = reverse("finetune:estimate", kwargs={"slug": SLUG})
    data = {"export": dpo_export.pk, "method": "dpo", "base_model": "tiny", "rank": "-1"}
    response = client.post(url, data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    content = response.content.decode()
    assert content.startswith('\n        <div id="estimate"') or content.lstrip().startswith(
        '<div id="estimate"'
    )
    assert "<li><strong>rank</strong>: must be at least 1</li>" in content


def test_launching_creates_a_run_and_shows_its_page(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    data = {
        "export": dpo_export.pk, "method": "dpo", "base_model": "tiny", "rank": "4",
        "max_steps": "2", "gradient_checkpointing": "0", "packing": "0",
    }  # fmt: skip
    response = client.post(reverse("finetune:launch", kwargs={"slug": SLUG}), data)
    run = FinetuneRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("finetune:run", kwargs={"slug": SLUG, "pk": run.pk})
    assert (run.created_by, run.lora["rank"], run.hyperparameters["max_steps"]) == (
        queue_admin,
        4,
        2,
    )


def test_a_refused_launch_answers_422_with_the_reasons(client, queue_admin, dpo_export, settings):  # noqa: F811
    client.force_login(queue_admin)
    settings.FINETUNE_DEVICE_MEMORY_GB = "0.001"
    data = {"export": dpo_export.pk, "method": "dpo", "base_model": "tiny"}
    response = client.post(reverse("finetune:launch", kwargs={"slug": SLUG}), data)
    assert response.status_code == 422
    assert "<li><strong>memory</strong>: estimated " in response.content.decode()
    assert FinetuneRun.objects.count() == 0
    response = client.post(reverse("finetune:launch", kwargs={"slug": SLUG}), data | {"force": "1"})
    assert response.status_code == 302
    assert FinetuneRun.objects.get().forced is True


def test_the_run_page_polls_until_the_run_finishes(client, queue_admin, run):
    client.force_login(queue_admin)
    url = reverse("finetune:run", kwargs={"slug": SLUG, "pk": run.pk})
    page = client.get(url)
    assert page.status_code == 200
    assert 'hx-trigger="every 2s"' in page.content.decode()
    assert ' style="' not in page.content.decode()  # the CSP allows no inline style
    services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    points = [
        {"step": 1, "loss": 2.0, "rewards/accuracies": 0.5},
        {"step": 2, "loss": 1.0, "rewards/accuracies": 1.0},
    ]
    services.record_progress(
        run_id=run.pk, fields={"metrics": points, "step": 2, "total_steps": 4, "progress": 0.5}
    )
    partial = client.get(url, headers={"HX-Request": "true"})
    content = partial.content.decode()
    assert partial.status_code == 200
    assert content.lstrip().startswith('<div id="run"')
    assert '<progress max="100" value="50">' in content
    assert '<polyline class="series" points="36.0,36.0 444.0,144.0">' in content  # the loss
    assert "Reward accuracy: <strong>1</strong> at step 2" in content
    services.finish(run_id=run.pk, status="failed", error="boom")
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286  # stop polling


def test_cancel_from_the_page(client, queue_admin, run):
    client.force_login(queue_admin)
    url = reverse("finetune:cancel", kwargs={"slug": SLUG, "pk": run.pk})
    assert client.post(url).status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
    again = client.post(url, follow=True)
    assert f"run {run.pk} has already finished" in again.content.decode()


def test_the_export_page_links_to_the_launch_form(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    page = client.get(reverse("exports:detail", kwargs={"slug": SLUG, "pk": dpo_export.pk}))
    assert f'href="/p/{SLUG}/finetune/new/?export={dpo_export.pk}"' in page.content.decode()


# API ------------------------------------------------------------------------------------------


def test_api_launch_list_detail_and_cancel(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    body = {
        "export": dpo_export.pk,
        "method": "dpo",
        "base_model": "tiny",
        "max_steps": 3,
        "target_modules": ["q_proj"],
    }
    created = client.post(
        reverse("finetune-api:run-list", kwargs={"slug": SLUG}),
        body,
        content_type="application/json",
    )
    assert created.status_code == 201
    run = FinetuneRun.objects.get()
    assert created.json()["id"] == run.pk
    assert (created.json()["status"], created.json()["lora"]["target_modules"]) == (
        "queued",
        ["q_proj"],
    )
    listed = client.get(reverse("finetune-api:run-list", kwargs={"slug": SLUG})).json()
    assert [row["id"] for row in listed["results"]] == [run.pk]
    detail = client.get(reverse("finetune-api:run-detail", kwargs={"slug": SLUG, "pk": run.pk}))
    assert (detail.status_code, detail.json()["hyperparameters"]["max_steps"]) == (200, 3)
    cancel = reverse("finetune-api:run-cancel", kwargs={"slug": SLUG, "pk": run.pk})
    assert client.post(cancel).json()["status"] == "cancelled"
    again = client.post(cancel)
    assert (again.status_code, again.json()) == (
        409,
        {"detail": f"run {run.pk} has already finished"},
    )


def test_api_refusals_name_the_field(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    body = {
        "export": dpo_export.pk,
        "method": "kto",
        "base_model": "/etc",
        "batch_size": 0,
        "force": "maybe",
    }
    response = client.post(
        reverse("finetune-api:run-list", kwargs={"slug": SLUG}),
        body,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {"errors": {"force": "must be true or false"}}
    listed = client.post(
        reverse("finetune-api:run-list", kwargs={"slug": SLUG}),
        [1],
        content_type="application/json",
    )
    assert (listed.status_code, listed.json()) == (
        400,
        {"errors": {"body": "must be a JSON object"}},
    )
    del body["force"]
    response = client.post(
        reverse("finetune-api:run-list", kwargs={"slug": SLUG}),
        body,
        content_type="application/json",
    )
    assert response.json() == {
        "errors": {
            "method": "must be one of sft, dpo",
            "base_model": f"must be a folder inside the models directory {models_dir()}",
            "batch_size": "must be at least 1",
        }
    }
    assert FinetuneRun.objects.count() == 0


def test_api_estimate(client, queue_admin, dpo_export):  # noqa: F811
    client.force_login(queue_admin)
    body = {"export": dpo_export.pk, "method": "dpo", "base_model": "tiny"}
    response = client.post(
        reverse("finetune-api:run-estimate", kwargs={"slug": SLUG}),
        body,
        content_type="application/json",
    )
    plan = services.plan_run(
        project=dpo_export.project,
        export_id=dpo_export.pk,
        method="dpo",
        base_model="tiny",
        values={},
    )
    assert response.status_code == 200
    data = response.json()
    device = (data["device"], data["device_memory"], data["fits"], data["refusal"])
    assert device == ("configured device", 8 * 1024**3, True, None)
    assert data["total"] == plan.estimate.total
    assert data["parts"][0] == {"part": "Base weights", "bytes": plan.estimate.weights}
    assert FinetuneRun.objects.count() == 0
