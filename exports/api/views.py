"""The export API: create a job, list and poll jobs, download their files. Admins only.

Lookups go through the caller's membership (`ProjectScoped`): outsiders 404, other roles 403,
anonymous callers 401. docs/api.md describes every endpoint.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from exports import jobs
from exports.api import serializers as s
from exports.errors import InvalidOptions
from exports.models import Export
from exports.views import file_response
from labeling.api.permissions import ADMINS, ProjectScoped


class ExportList(ProjectScoped, generics.ListAPIView[Export]):
    """The project's exports, newest first. POST queues a new export job."""

    read_roles = ADMINS
    queryset = Export.objects.none()
    serializer_class = s.ExportSerializer
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Export]:
        return self.membership.project.exports.select_related("created_by", "project")

    @extend_schema(request=s.ExportRequestSerializer, responses={202: s.ExportSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Queue an export; poll the job it answers with until `status` is final."""
        project = self.membership.project
        members = frozenset(project.memberships.values_list("user__username", flat=True))
        fields = s.ExportRequestSerializer(data=request.data, members=members)
        fields.is_valid(raise_exception=True)
        try:
            export = jobs.start_export(
                project=project, options=fields.options(), created_by=request.user
            )
        except InvalidOptions as error:
            raise ValidationError(error.fields or {"non_field_errors": [str(error)]}) from None
        return Response(s.ExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetail(ProjectScoped, generics.RetrieveAPIView[Export]):
    read_roles = ADMINS
    queryset = Export.objects.none()
    serializer_class = s.ExportSerializer

    def get_queryset(self) -> QuerySet[Export]:
        return self.membership.project.exports.select_related("created_by", "project")


class ExportFile(ProjectScoped, generics.GenericAPIView[Export]):
    read_roles = ADMINS
    queryset = Export.objects.none()

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such export, or no such file in it."),
        }
    )
    def get(self, request: Request, slug: str, pk: int, name: str) -> FileResponse:
        """One file of a finished job (a data file, manifest.json or README.md), as written."""
        export = get_object_or_404(self.membership.project.exports, pk=pk)
        export.project = self.membership.project
        return file_response(export, name)
