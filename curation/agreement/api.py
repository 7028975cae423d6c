"""The agreement report over the REST API, for admins and reviewers (docs/api.md)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.agreement import services
from curation.agreement.tasks import refresh_agreement
from curation.models import AgreementReport
from labeling.api.permissions import ADMINS, REVIEWERS, ProjectScoped


class ReportSummarySerializer(serializers.ModelSerializer[AgreementReport]):
    class Meta:
        model = AgreementReport
        fields = ["id", "created_at", "annotations", "last_annotation_id", "duration_ms"]


class ReportSerializer(ReportSummarySerializer):
    # The model field is named `data`, like Serializer.data: the stubs see a clash.
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="The statistics; docs/curation.md lists the fields."
    )

    class Meta(ReportSummarySerializer.Meta):
        fields = [*ReportSummarySerializer.Meta.fields, "data"]


class QueuedSerializer(serializers.Serializer[dict[str, str]]):
    detail = serializers.CharField()


class AgreementLatest(ProjectScoped, APIView):
    read_roles = REVIEWERS

    @extend_schema(responses={200: ReportSerializer})
    def get(self, request: Request, slug: str) -> Response:
        """The newest agreement report; 404 while the project has none."""
        report = services.latest(self.membership.project)
        if report is None:
            raise Http404("No agreement report yet.")
        return Response(ReportSerializer(report).data)


class AgreementHistory(ProjectScoped, generics.ListAPIView[AgreementReport]):
    """Earlier reports without their statistics, newest first (the last 50 are kept)."""

    read_roles = REVIEWERS
    queryset = AgreementReport.objects.none()
    serializer_class = ReportSummarySerializer

    def get_queryset(self) -> QuerySet[AgreementReport]:
        return AgreementReport.objects.filter(project=self.membership.project).defer("data")


class AgreementRefresh(ProjectScoped, APIView):
    read_roles = ADMINS
    write_roles = ADMINS

    @extend_schema(request=None, responses={202: QueuedSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Queue a recomputation now (no debounce; still never two at once)."""
        refresh_agreement.delay_on_commit(self.membership.project.pk, True)
        return Response({"detail": "queued"}, status=status.HTTP_202_ACCEPTED)
