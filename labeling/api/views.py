"""The REST API: validate -> scoped fetch -> one service call -> serialize.

Every project lookup goes through the caller's membership (`permissions.ProjectScoped`), every
lease lookup through `permissions.lease_for`. The services' expected failures become answers
in `ApiView.handle_exception`, so the views below only describe the way through.
"""

from collections.abc import Mapping
from typing import Any, cast

from django.db import connection
from django.db.models import F, Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import own_review_task
from labeling.api import serializers as s
from labeling.api.permissions import ADMINS, MEMBERS, REVIEWERS, ProjectScoped, lease_for
from labeling.models import (
    Annotation,
    AnnotationVerdict,
    Assignment,
    GoldLabel,
    GuidelineVersion,
    ImportJob,
    Item,
    Membership,
    Project,
    Review,
    ReviewTask,
)
from labeling.services import annotations, assignments, gold, guidelines, imports, reviews
from labeling.services.annotations import AlreadySubmitted, InvalidAnnotation
from labeling.services.assignments import (
    SHOWN_FIELDS,
    AnnotatorPaused,
    GuidelinesNotAcknowledged,
    LeaseLost,
)
from labeling.services.guidelines import StaleAcknowledgement

LEASE_LOST = OpenApiResponse(
    s.LeaseLostSerializer, description="The lease lapsed and was reclaimed, or was submitted."
)


class ApiView(APIView):
    def handle_exception(self, exc: Exception) -> Response:
        """The services' expected failures, in the shapes docs/api.md documents."""
        if isinstance(exc, InvalidAnnotation):
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, LeaseLost):
            body = {"detail": str(exc), "item_open": exc.item_open}
            return Response(body, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, AlreadySubmitted | StaleAcknowledgement | reviews.ReviewLeaseLost):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, gold.GoldError):
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, AnnotatorPaused):
            return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
        return super().handle_exception(exc)


def shown_lease(assignment: Assignment, project: Project) -> s.Lease:
    """What the annotator sees for a lease: one query for a pairwise item's responses.

    Both ways to a lease load the shown fields (a renewal the whole item, a fresh claim
    `SHOWN_FIELDS`); the refresh is for a caller that did not.
    """
    item = assignment.item
    if not item.get_deferred_fields().isdisjoint(SHOWN_FIELDS):
        # One query for all of them; touching each deferred field would cost one apiece.
        item.refresh_from_db(fields=SHOWN_FIELDS)
    responses = shown_texts(item.pk) if project.is_pairwise else []
    if assignment.swapped:
        responses.reverse()
    shown = [s.ShownResponse(side, text) for side, text in zip(s.SIDES, responses, strict=False)]
    return s.Lease(assignment.pk, assignment.expires_at, item, shown)


RESPONSE_TEXTS = "SELECT text FROM labeling_response WHERE item_id = %s ORDER BY position"


def shown_texts(item_id: int) -> list[str]:
    """A pairwise item's response texts in stored order (written out: a hot read)."""
    with connection.cursor() as cursor:
        cursor.execute(RESPONSE_TEXTS, (item_id,))
        return [text for (text,) in cursor.fetchall()]


def next_lease(membership: Membership) -> dict[str, Any] | None:
    """The lease to show after a submit or skip, rendered.

    None when the queue is empty for the caller, and also when a new guideline version awaits
    acknowledgement: the client's next claim then answers 409 with that version.
    """
    try:
        # The caller's lease was just closed, so there is none to look for first.
        assignment = assignments.claim_next(membership=membership, renew=False)
    except (GuidelinesNotAcknowledged, AnnotatorPaused):
        return None
    return None if assignment is None else s.lease_data(shown_lease(assignment, membership.project))


class ProjectQueryset(generics.GenericAPIView[Project]):
    def get_queryset(self) -> QuerySet[Project]:
        # The annotations reuse the membership join of visible_to(): the caller's row only.
        projects = (
            Project.objects.visible_to(self.request.user)
            .annotate(
                role=F("memberships__role"),
                acknowledged_guideline=F("memberships__acknowledged_guideline__number"),
            )
            .select_related("current_guideline")
        )
        return cast("QuerySet[Project]", projects)


class ProjectList(ProjectQueryset, generics.ListAPIView[Project]):
    """The projects you are a member of, with your role in each."""

    queryset = Project.objects.none()  # for the schema; requests use get_queryset()
    serializer_class = s.ProjectSerializer


class ProjectDetail(ProjectQueryset, generics.RetrieveAPIView[Project]):
    queryset = Project.objects.none()
    serializer_class = s.ProjectSerializer
    lookup_field = "slug"


class GuidelineList(ProjectScoped, generics.ListAPIView[GuidelineVersion]):
    """Guideline versions, newest first. Admins publish a new version with POST."""

    queryset = GuidelineVersion.objects.none()
    serializer_class = s.GuidelineSerializer

    def get_queryset(self) -> QuerySet[GuidelineVersion]:
        return self.membership.project.guidelines.select_related("author")

    @extend_schema(request=s.PublishGuidelineSerializer, responses={201: s.GuidelineSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = self.membership.project
        fields = s.PublishGuidelineSerializer(data=request.data)
        fields.is_valid(raise_exception=True)
        version = guidelines.publish(project=project, author=request.user, **fields.validated_data)
        return Response(s.GuidelineSerializer(version).data, status=status.HTTP_201_CREATED)


class GuidelineCurrent(ProjectScoped, ApiView):
    @extend_schema(responses={200: s.GuidelineSerializer, 404: s.DetailSerializer})
    def get(self, request: Request, slug: str) -> Response:
        """The version in force; 404 while the project has none."""
        version = self.membership.project.current_guideline
        if version is None:
            raise Http404("This project has no guidelines yet.")
        return Response(s.GuidelineSerializer(version).data)


class GuidelineAcknowledge(ProjectScoped, ApiView):
    write_roles = MEMBERS

    @extend_schema(
        request=None, responses={200: s.AcknowledgementSerializer, 409: s.DetailSerializer}
    )
    def post(self, request: Request, slug: str, number: int) -> Response:
        """Record that you read version `number`; 409 when a newer one is current."""
        version = get_object_or_404(self.membership.project.guidelines, number=number)
        guidelines.acknowledge(membership=self.membership, version=version)
        return Response({"acknowledged_guideline": version.number})


@extend_schema_view(get=extend_schema(parameters=[s.ItemFilterSerializer]))
class ItemList(ProjectScoped, generics.ListAPIView[Item]):
    """The project's items, for admins and reviewers."""

    read_roles = REVIEWERS
    queryset = Item.objects.none()
    serializer_class = s.ItemSerializer

    def get_queryset(self) -> QuerySet[Item]:
        filters = s.ItemFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return filters.filter(self.membership.project.items.prefetch_related("responses"))


class ItemDetail(ProjectScoped, generics.RetrieveAPIView[Item]):
    read_roles = REVIEWERS
    queryset = Item.objects.none()
    serializer_class = s.ItemSerializer

    def get_queryset(self) -> QuerySet[Item]:
        return self.membership.project.items.prefetch_related("responses")


class ImportCreate(ProjectScoped, ApiView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=s.ImportUploadSerializer, responses={202: s.ImportJobSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Upload a file to import; poll the job it answers with until it has finished."""
        project = self.membership.project
        upload = s.ImportUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        job = imports.start_import(
            project=project,
            created_by=request.user,
            uploaded=file,
            filename=file.name,
            skip_bad_lines=upload.validated_data["skip_bad_lines"],
        )
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetail(ProjectScoped, generics.RetrieveAPIView[ImportJob]):
    read_roles = ADMINS
    queryset = ImportJob.objects.none()
    serializer_class = s.ImportJobSerializer

    def get_queryset(self) -> QuerySet[ImportJob]:
        return self.membership.project.import_jobs.all()


class Claim(ProjectScoped, ApiView):
    write_roles = MEMBERS

    @extend_schema(
        request=None,
        responses={
            200: s.LeaseSerializer,
            204: OpenApiResponse(description="Nothing left to label for you."),
            409: OpenApiResponse(s.GuidelineGateSerializer, description="Read the guidelines."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        """Lease the next item, or renew the lease you hold (safe to repeat)."""
        membership = self.membership
        try:
            assignment = assignments.claim_next(membership=membership)
        except GuidelinesNotAcknowledged:
            guideline = s.GuidelineSerializer(membership.project.current_guideline).data
            body = {"detail": "Acknowledge the new guidelines first.", "guideline": guideline}
            return Response(body, status=status.HTTP_409_CONFLICT)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.lease_data(shown_lease(assignment, membership.project)))


class Heartbeat(ApiView):
    @extend_schema(request=None, responses={200: s.HeartbeatSerializer, 409: LEASE_LOST})
    def post(self, request: Request, pk: int) -> Response:
        """Keep your lease alive while the item is open."""
        assignment, _ = lease_for(request.user, pk)
        expires_at = assignments.heartbeat(assignment=assignment, user=request.user)
        return Response(s.HeartbeatSerializer({"expires_at": expires_at}).data)


class Submit(ApiView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.SubmissionSerializer,
        responses={
            201: s.SubmitResultSerializer,
            200: OpenApiResponse(s.SubmitResultSerializer, description="A repeat: the first."),
            400: s.InvalidAnnotationSerializer,
            409: LEASE_LOST,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        """Store your annotation and lease the next item. Repeats with a client_id are no-ops."""
        assignment, membership = lease_for(request.user, pk)
        data = submission(request)
        result = annotations.submit(
            assignment=assignment,
            user=request.user,
            data=data,
            resubmit=wants_resubmit(request, data),
            membership=membership,
        )
        annotation = with_known_relations(result.annotation, request.user, membership)
        body = {"annotation": s.annotation_data(annotation), "next": next_lease(membership)}
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(body, status=code)


def submission(request: Request) -> Mapping[str, Any]:
    """The body as the annotations service reads it; it validates the fields itself."""
    if not isinstance(request.data, Mapping):
        raise InvalidAnnotation({"body": "expected a JSON object"})
    return request.data


def wants_resubmit(request: Request, data: Mapping[str, Any]) -> bool:
    flag = request.query_params.get("resubmit", "")
    return flag.lower() in ("1", "true") or data.get("resubmit") is True


def with_known_relations(annotation: Annotation, user: Any, membership: Membership) -> Annotation:
    """Attach the rows the serializer reads: both are in hand, so spare it two queries."""
    annotation.annotator = user
    if annotation.guideline_id == membership.acknowledged_guideline_id:
        annotation.guideline = membership.acknowledged_guideline
    return annotation


class Skip(ApiView):
    @extend_schema(
        request=s.SkipSerializer, responses={200: s.NextLeaseSerializer, 409: LEASE_LOST}
    )
    def post(self, request: Request, pk: int) -> Response:
        """Give the item back with a reason (you will not see it again); leases the next."""
        assignment, membership = lease_for(request.user, pk)
        fields = s.SkipSerializer(data=request.data)
        fields.is_valid(raise_exception=True)
        assignments.skip(assignment=assignment, user=request.user, **fields.validated_data)
        return Response({"next": next_lease(membership)})


class AnnotationList(ProjectScoped, generics.ListAPIView[Annotation]):
    """Annotations in the project: your own, or everyone's for reviewers and admins."""

    queryset = Annotation.objects.none()
    serializer_class = s.AnnotationSerializer

    def get_queryset(self) -> QuerySet[Annotation]:
        rows = self.membership.project.annotations.select_related("annotator", "guideline")
        if self.membership.can_review:
            return rows
        return rows.filter(annotator_id=self.membership.user_id)


# Review, gold and feedback (docs/review.md) ---------------------------------------------------


def review_lease_data(task: ReviewTask) -> dict[str, Any]:
    """The leased task with its item, stored responses and votes: three queries."""
    votes = Annotation.objects.select_related("annotator", "guideline").order_by("pk")
    task.item = Item.objects.prefetch_related("responses", Prefetch("annotations", votes)).get(
        pk=task.item_id
    )
    return dict(s.ReviewLeaseSerializer(task).data)


class ReviewList(ProjectScoped, generics.ListAPIView[Review]):
    """The project's review decisions, newest first (reviewers and admins)."""

    read_roles = REVIEWERS
    queryset = Review.objects.none()
    serializer_class = s.ReviewSerializer

    def get_queryset(self) -> QuerySet[Review]:
        return self.membership.project.reviews.select_related("reviewer").prefetch_related(
            "verdicts"
        )


class ReviewClaim(ProjectScoped, ApiView):
    write_roles = REVIEWERS

    @extend_schema(
        request=None,
        responses={
            200: s.ReviewLeaseSerializer,
            204: OpenApiResponse(description="Nothing left to review for you."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        """Lease the next item to review, or renew the one you hold (safe to repeat)."""
        task = reviews.next_review(membership=self.membership)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(review_lease_data(task))


class ReviewHeartbeat(ProjectScoped, ApiView):
    write_roles = REVIEWERS

    @extend_schema(request=None, responses={200: s.HeartbeatSerializer, 409: s.DetailSerializer})
    def post(self, request: Request, slug: str, pk: int) -> Response:
        """Keep your review lease alive while the item is open."""
        task = own_review_task(self.membership, pk)
        expires_at = reviews.heartbeat(task=task, reviewer=request.user)
        return Response(s.HeartbeatSerializer({"expires_at": expires_at}).data)


class ReviewSubmit(ProjectScoped, ApiView):
    write_roles = REVIEWERS
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.ReviewSubmissionSerializer,
        responses={
            201: s.ReviewResultSerializer,
            200: OpenApiResponse(s.ReviewResultSerializer, description="A repeat: the first."),
            400: s.InvalidAnnotationSerializer,
            409: s.DetailSerializer,
        },
    )
    def post(self, request: Request, slug: str, pk: int) -> Response:
        """Store your decision. Repeats with the same client_id answer the first."""
        task = own_review_task(self.membership, pk)
        result = reviews.submit(task=task, reviewer=request.user, data=submission(request))
        body = {"review": s.ReviewSerializer(result.review).data}
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(body, status=code)


class GoldList(ProjectScoped, ApiView, generics.ListAPIView[GoldLabel]):
    """Gold items and their expected labels (admins). POST marks an item gold."""

    read_roles = ADMINS
    queryset = GoldLabel.objects.none()
    serializer_class = s.GoldLabelSerializer

    def get_queryset(self) -> QuerySet[GoldLabel]:
        labels = self.membership.project.gold_labels.select_related("item", "created_by")
        return labels.order_by("-pk")

    @extend_schema(
        request=s.MarkGoldSerializer,
        responses={201: s.GoldLabelSerializer, 400: s.DetailSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.membership.project  # the role check comes before validation
        fields = s.MarkGoldSerializer(data=request.data)
        fields.is_valid(raise_exception=True)
        expected = dict(fields.validated_data)
        item = get_object_or_404(project.items, pk=expected.pop("item"))
        label = gold.mark_gold(item=item, created_by=request.user, **expected)
        return Response(s.GoldLabelSerializer(label).data, status=status.HTTP_201_CREATED)


class GoldDetail(ProjectScoped, generics.RetrieveAPIView[GoldLabel]):
    """One gold item's label (admins); DELETE turns it back into a regular item."""

    read_roles = ADMINS
    queryset = GoldLabel.objects.none()
    serializer_class = s.GoldLabelSerializer
    lookup_field = "item_id"
    lookup_url_kwarg = "item"

    def get_queryset(self) -> QuerySet[GoldLabel]:
        return self.membership.project.gold_labels.select_related("item", "created_by")

    @extend_schema(responses={204: None, 404: s.DetailSerializer})
    def delete(self, request: Request, slug: str, item: int) -> Response:
        label = self.get_object()
        gold.demote(item=label.item)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FeedbackList(ProjectScoped, generics.ListAPIView[AnnotationVerdict]):
    """Reviews of your own annotations, newest first: yours only, whatever your role."""

    queryset = AnnotationVerdict.objects.none()
    serializer_class = s.FeedbackSerializer

    def get_queryset(self) -> QuerySet[AnnotationVerdict]:
        return (
            AnnotationVerdict.objects.filter(
                annotation__project_id=self.membership.project_id,
                annotation__annotator_id=self.membership.user_id,
            )
            .select_related("annotation", "review__reviewer")
            .order_by("-review__created_at", "-pk")
        )
