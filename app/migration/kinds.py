"""The job kinds, registered with the worker by importing this module."""

from __future__ import annotations

from typing import Any

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate, UserImport
from app.errors import DomainError
from app.migration.imports import FileImport, ValidRow, WriteOutcome, row_error
from app.migration.worker import register_kind
from app.runtime import Runtime
from app.storage.base import Conflict
from app.storage.records import JobRecord


class UserFileImport(FileImport[UserImport]):
    """Users of a legacy system with their password hashes (argon2, bcrypt, Django pbkdf2_sha256).

    Create-only: an existing username is a row error, unless this very job created it (a batch
    processed again after a crash), which counts once as created.
    """

    fields = frozenset(UserImport.model_fields)
    batch_rows = 100  # one conditional write per user; users are few

    def parse(self, mapped: dict[str, Any], job: JobRecord, runtime: Runtime) -> UserImport:
        return UserImport.model_validate(mapped)

    def write(
        self, rows: list[ValidRow[UserImport]], job: JobRecord, runtime: Runtime, *, dry_run: bool
    ) -> WriteOutcome:
        auth = auth_service_of(runtime)
        outcome = WriteOutcome(errors=[])
        assert outcome.errors is not None
        for row in rows:
            user = row.record
            existing = runtime.store.users.get(user.username)
            if existing is not None:
                if existing.import_job_id == job.id:
                    outcome.created += 1
                else:
                    outcome.errors.append(
                        row_error(
                            job.id, row.number, "username", "exists", "a user with this name exists", user.username
                        )
                    )
                continue
            if not auth.hasher.is_known_hash(user.password_hash):
                outcome.errors.append(
                    row_error(
                        job.id,
                        row.number,
                        "password_hash",
                        "unknown_hash_scheme",
                        "not a hash of a supported scheme (argon2, bcrypt, Django pbkdf2_sha256)",
                    )
                )
                continue
            if dry_run:
                outcome.created += 1
                continue
            request = UserCreate.model_construct(
                username=user.username, password="", role=user.role, email=user.email, full_name=user.full_name
            )
            try:
                auth.create_user(f"job:{job.id}", request, password_hash=user.password_hash, import_job_id=job.id)
            except (Conflict, DomainError) as exc:
                outcome.errors.append(row_error(job.id, row.number, "username", "rejected", str(exc), user.username))
                continue
            outcome.created += 1
        return outcome


register_kind("import:users")(UserFileImport)
