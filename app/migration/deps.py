"""The jobs service of a request."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends

from app.deps import RuntimeDep
from app.migration.service import JobService


async def get_job_service(runtime: RuntimeDep) -> JobService:
    return JobService(runtime)


JobServiceDep = Annotated[JobService, Depends(get_job_service)]
