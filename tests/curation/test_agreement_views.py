"""The dashboard and the API: who may see what, what they see, escaping of names."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from curation.agreement import services
from curation.models import AgreementReport
from labeling.models import Role
from tests.curation.agreement_builders import vote
from tests.factories import MembershipFactory, UserFactory, pairwise_item

XSS = '<script>alert("x")</script>'


@pytest.fixture
def reported(pairwise_project, annotator, other_annotator, reviewer, queue_admin, outsider):
    for choice in ("a", "b", "tie"):
        item = pairwise_item(pairwise_project)
        vote(pairwise_project, item, annotator, choice="a")
        vote(pairwise_project, item, other_annotator, choice=choice)
    return services.refresh(project=pairwise_project)


ACTORS = {"annotator": "alice", "reviewer": "rita", "admin": "ada", "outsider": "mallory"}


def _login(client, actor):
    if actor != "anonymous":
        client.force_login(UserFactory(username=ACTORS[actor]))
    return client


@pytest.mark.parametrize(
    ("actor", "status"),
    [("anonymous", 302), ("outsider", 404), ("annotator", 403), ("reviewer", 200), ("admin", 200)],
)
def test_dashboard_permissions(client, reported, actor, status):
    response = _login(client, actor).get(reverse("curation:agreement", args=["pair-demo"]))

    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(
    ("actor", "status"),
    [("outsider", 404), ("annotator", 403), ("reviewer", 403), ("admin", 302)],
)
def test_recompute_button_is_for_admins(
    client, reported, actor, status, django_capture_on_commit_callbacks
):
    url = reverse("curation:agreement-refresh", args=["pair-demo"])

    with django_capture_on_commit_callbacks() as callbacks:
        response = _login(client, actor).post(url)

    assert response.status_code == status
    assert len(callbacks) == (1 if status == 302 else 0)


def test_dashboard_shows_charts_and_numbers(client, reported):
    response = _login(client, "reviewer").get(reverse("curation:agreement", args=["pair-demo"]))

    page = response.content.decode()
    assert response.templates[0].name == "curation/agreement.html"
    assert page.count('<svg class="chart"') == 5
    assert "<details><summary>Numbers</summary>" in page
    assert ">Agreement</a>" in page  # the tab
    # alice: 3 left picks of 3 (never swapped): p = 2 / 8.
    assert "<td>3 / 0</td><td>1.000</td><td>0.2500</td>" in page
    assert (
        "<script>" not in page.replace('<script src="/static/js/app.js"', "").split("<body", 1)[1]
    )


def test_dashboard_without_a_report(client, pairwise_project, reviewer):
    response = _login(client, "reviewer").get(reverse("curation:agreement", args=["pair-demo"]))

    assert response.status_code == 200
    assert b"No agreement report yet" in response.content


def test_the_agreement_tab_is_hidden_from_annotators(client, reported):
    response = _login(client, "annotator").get(reverse("labeling:project", args=["pair-demo"]))

    assert b">Agreement</a>" not in response.content


def test_annotator_names_are_escaped(client, pairwise_project, reviewer):
    evil = UserFactory(username=XSS)
    plain = UserFactory(username="plain")
    MembershipFactory(user=evil, project=pairwise_project, role=Role.ANNOTATOR)
    for _ in range(10):
        item = pairwise_item(pairwise_project)
        vote(pairwise_project, item, evil, choice="a")
        vote(pairwise_project, item, plain, choice="a")
    services.refresh(project=pairwise_project)

    page = _login(client, "reviewer").get(reverse("curation:agreement", args=["pair-demo"]))

    text = page.content.decode()
    assert XSS not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text


def _api(actor):
    api = APIClient()
    if actor != "anonymous":
        api.force_authenticate(UserFactory(username=ACTORS[actor]))
    return api


@pytest.mark.parametrize(
    ("actor", "status"),
    [("anonymous", 401), ("outsider", 404), ("annotator", 403), ("reviewer", 200), ("admin", 200)],
)
@pytest.mark.parametrize("name", ["curation-api:agreement", "curation-api:agreement-history"])
def test_api_read_permissions(reported, actor, status, name):
    response = _api(actor).get(reverse(name, args=["pair-demo"]))

    assert response.status_code == status


def test_api_latest_report(reported):
    response = _api("reviewer").get(reverse("curation-api:agreement", args=["pair-demo"]))

    body = response.json()
    assert body["id"] == reported.pk
    assert body["annotations"] == 6
    assert body["data"] == AgreementReport.objects.get(pk=reported.pk).data
    assert body["data"]["distribution"] == {"a": 4, "b": 1, "tie": 1, "both_bad": 0, "none": 0}


def test_api_history_lists_reports_without_data(reported):
    response = _api("admin").get(reverse("curation-api:agreement-history", args=["pair-demo"]))

    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["id"] == reported.pk
    assert "data" not in body["results"][0]


def test_api_answers_404_before_the_first_report(pairwise_project, reviewer):
    response = _api("reviewer").get(reverse("curation-api:agreement", args=["pair-demo"]))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("actor", "status"),
    [("outsider", 404), ("annotator", 403), ("reviewer", 403), ("admin", 202)],
)
def test_api_refresh_is_for_admins(reported, actor, status, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = _api(actor).post(reverse("curation-api:agreement-refresh", args=["pair-demo"]))

    assert response.status_code == status
    assert len(callbacks) == (1 if status == 202 else 0)
