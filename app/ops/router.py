# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import JSONResponse

from app import __version__
from app.api_types import IsoDateTime
from app.auth.deps import PUBLIC, require
from app.auth.policy import Capability
from app.auth.service import Principal
from app.deps import PageParams, RuntimeDep, SettingsDep, StoreDep, domain_router
from app.errors import FieldCode, ProblemType
from app.openapi import error_responses, invalid, only, query_object
from app.ops.dashboard import dashboard_stats
from app.ops.schemas import AuditEntryOut, AuditPage, Check, DashboardStats, Liveness, ReadinessReport
from app.ops.service import search_audit

router = domain_router(tags=["health"], dependencies=[Depends(PUBLIC)])


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


audit_router = domain_router(prefix="/audit", tags=["audit"])
_ENTITY_TYPE = r"^[a-z_]+$"
AuditReader = Annotated[Principal, Depends(require(Capability.AUDIT_READ))]


@audit_router.get(
    "",
    operation_id="audit_search",
    summary="Search the audit log (admin), newest first",
    description="Filter by entity, actor and time range (`since`/`until`, inclusive, ISO-8601 with offset; "
    "default: the last 7 days; of any length). Entries expire after AUDIT_RETENTION_DAYS. A page may hold "
    "fewer entries than `limit`, even none, and still a `next_cursor`: a long window costs more pages.",
    response_model=AuditPage,
    responses=error_responses(
        ProblemType.INVALID_CURSOR,
        invalid(("query.until", FieldCode.TIMEZONE_REQUIRED)),
    ),
    openapi_extra=query_object(
        "entity",
        only(
            {"entity_type": {"type": "string", "maxLength": 32, "pattern": _ENTITY_TYPE}},
            {"entity_id": {"type": "string", "maxLength": 128}},
        ),
        required=False,
        description="`entity_type` (e.g. `subscriber`), optionally with `entity_id`: an id needs its type.",
    ),
)
def search(
    principal: AuditReader,
    store: StoreDep,
    paging: PageParams,
    entity_type: Annotated[str | None, Query(max_length=32, pattern=_ENTITY_TYPE, include_in_schema=False)] = None,
    entity_id: Annotated[str | None, Query(max_length=128, include_in_schema=False)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[IsoDateTime | None, Query()] = None,
    until: Annotated[IsoDateTime | None, Query()] = None,
) -> AuditPage:
    page = search_audit(
        store,
        entity_type=entity_type,
        entity_id=entity_id,
        actor=actor,
        since=since,
        until=until,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    unmasked = principal.can(Capability.SUBSCRIBERS_UNMASKED)
    return AuditPage.of(page, lambda entry: AuditEntryOut.of(entry, unmasked=unmasked))


dashboard_router = domain_router(prefix="/dashboard", tags=["dashboard"])


@dashboard_router.get(
    "/stats",
    operation_id="dashboard_stats",
    summary="Subscribers by status and plan, bookings today and the next 7 days, jobs by status and the "
    "last 24 hours' success rate",
    description="Read from counters maintained with every write: constant cost, however large the data.",
    response_model=DashboardStats,
)
def stats(_: Annotated[Principal, Depends(require(Capability.DASHBOARD_READ))], store: StoreDep) -> DashboardStats:
    return dashboard_stats(store)
