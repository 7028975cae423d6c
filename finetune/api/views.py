"""The finetune API: launch, list, poll and cancel runs, and estimate one before launch.

Admins of the project only: an outsider gets 404 and a reviewer or annotator 403, through the
same membership lookup as every other endpoint (labeling.api.permissions.ProjectScoped).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finetune import services
from finetune.api import serializers as s
from finetune.errors import InvalidRun, RunFinished
from finetune.models import FinetuneRun
from labeling.api.permissions import ADMINS, ProjectScoped

INVALID = OpenApiResponse(s.FinetuneErrorsSerializer, description="Each refused field and why.")


class AdminOnly(ProjectScoped):
    read_roles = ADMINS
    write_roles = ADMINS

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvalidRun):
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, RunFinished):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)

    def runs(self) -> QuerySet[FinetuneRun]:
        return FinetuneRun.objects.for_project(self.membership.project).select_related("created_by")

    def plan(self, request: Request) -> tuple[services.Plan, bool]:
        if not isinstance(request.data, dict):
            raise InvalidRun({"body": "must be a JSON object"})
        return services.plan_request(project=self.membership.project, data=dict(request.data))


def estimate_data(plan: services.Plan) -> dict[str, Any]:
    usage, device = plan.estimate, plan.device
    return {
        "parameters": usage.parameters,
        "trainable_parameters": usage.trainable_parameters,
        "parts": [{"part": part, "bytes": size} for part, size in usage.parts()],
        "total": usage.total,
        "device": device.name if device else None,
        "device_memory": device.memory if device else None,
        "fits": plan.fits,
        "refusal": plan.refusal,
    }


class RunList(AdminOnly, generics.ListAPIView[FinetuneRun]):
    """The project's finetune runs, newest first. POST launches one."""

    queryset = FinetuneRun.objects.none()  # for the schema; requests use get_queryset()
    serializer_class = s.FinetuneRunSummarySerializer
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[FinetuneRun]:
        return self.runs()

    @extend_schema(
        request=s.FinetuneLaunchSerializer, responses={201: s.FinetuneRunSerializer, 400: INVALID}
    )
    def post(self, request: Request, slug: str) -> Response:
        """Queue a run; 400 names each bad field, and a run whose estimate does not fit."""
        plan, force = self.plan(request)
        run = services.create_run(plan=plan, created_by=request.user, force=force)
        return Response(s.FinetuneRunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunEstimate(AdminOnly, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.FinetuneLaunchSerializer,
        responses={200: s.FinetuneEstimateSerializer, 400: INVALID},
    )
    def post(self, request: Request, slug: str) -> Response:
        """The memory a launch with this body would need, next to the device's; launches nothing."""
        return Response(estimate_data(self.plan(request)[0]))


class RunDetail(AdminOnly, generics.RetrieveAPIView[FinetuneRun]):
    """One run with its step metrics and log: poll it until `status` is final."""

    queryset = FinetuneRun.objects.none()
    serializer_class = s.FinetuneRunSerializer

    def get_queryset(self) -> QuerySet[FinetuneRun]:
        return self.runs()


class RunCancel(AdminOnly, APIView):
    @extend_schema(
        request=None,
        responses={
            200: s.FinetuneRunSerializer,
            409: OpenApiResponse(description="Already finished."),
        },
    )
    def post(self, request: Request, slug: str, pk: int) -> Response:
        """Cancel a run: a queued one at once, a running one after its current step."""
        run = services.cancel(run=get_object_or_404(self.runs(), pk=pk))
        return Response(s.FinetuneRunSerializer(run).data)
