from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app import __version__
from app.auth.deps import PUBLIC
from app.deps import RuntimeDep, SettingsDep
from app.ops.schemas import Check, Liveness, ReadinessReport

router = APIRouter(tags=["health"], dependencies=[Depends(PUBLIC)])


@router.get(
    "/health",
    operation_id="health_live",
    summary="Liveness: the process answers (no auth, no storage call)",
    response_model=Liveness,
)
def live(settings: SettingsDep) -> Liveness:
    return Liveness(version=__version__, environment=settings.app_env.value)


@router.get(
    "/health/ready",
    operation_id="health_ready",
    summary="Readiness: the store is reachable and its table/collections and indexes exist",
    response_model=ReadinessReport,
    responses={503: {"model": ReadinessReport, "description": "A check failed; `checks` says which."}},
)
def ready(runtime: RuntimeDep) -> JSONResponse:
    readiness = runtime.store.readiness()
    report = ReadinessReport(
        status="ready" if readiness.ok else "not_ready",
        backend=readiness.backend,
        checks={name: Check(ok=check.ok, detail=check.detail) for name, check in readiness.checks.items()},
    )
    return JSONResponse(report.model_dump(), status_code=200 if readiness.ok else 503)
