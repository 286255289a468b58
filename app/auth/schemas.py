from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)

from app.api_types import PageOut
from app.errors import FieldCode, invalid_value
from app.storage.records import Role, UserRecord

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


def normalise_username(value: str) -> str:
    """Usernames are case-insensitive: stored and compared in lower case."""
    value = value.strip().lower()
    if not USERNAME_PATTERN.fullmatch(value):
        raise invalid_value(
            FieldCode.INVALID_USERNAME,
            "3-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


# The documented pattern is the stored one, any case (usernames are compared in lower case).
USERNAME_SCHEMA_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{2,63}\s*$"
Username = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(normalise_username),
    Field(json_schema_extra={"pattern": USERNAME_SCHEMA_PATTERN}),
]
# A password as sent to sign in (any the account was given, legacy ones included).
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# A password being set: the service checks the policy (PASSWORD_MIN_LENGTH without the padding at
# either end, at most 1024 bytes, not the username); `app.openapi` writes the length into the
# document from the settings in place of the marker.
PASSWORD_POLICY_MARKER = "x-password-policy"  # noqa: S105 - a schema keyword, not a password
NewPassword = Annotated[
    str,
    StringConstraints(max_length=1024),
    WithJsonSchema({"type": "string", "maxLength": 1024, PASSWORD_POLICY_MARKER: True}),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(StrictModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Password

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"username": "jdoe", "password": "correct horse battery"}},
    )


class LoginForm(LoginRequest):
    """The OAuth2 password grant as a form (RFC 6749, 4.3.2), as Swagger UI's Authorize sends it; its
    other fields (`scope`, `client_id`) are ignored."""

    grant_type: Literal["password"] = "password"
    password: Password = Field(json_schema_extra={"format": "password"})

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {"grant_type": "password", "username": "jdoe", "password": "correct horse battery"}
        },
    )


class RefreshRequest(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=256)]

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"refresh_token": "kq3x0Ah8bq2TfK1m5b6rS0yQn7d0wJ9ePZr4u2vC1s8"}}
    )


class LogoutRequest(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=256)] | None = Field(
        None, description="Also end the session of this refresh token (if it differs from the current one)."
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {}})


class TokenPair(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # `token_type` is always sent

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires (if not rotated).")


class PasswordChange(StrictModel):
    current_password: Password
    new_password: NewPassword

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"current_password": "my old passphrase", "new_password": "a new long passphrase"}
        },
    )


class PasswordReset(StrictModel):
    new_password: NewPassword

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"new_password": "a temporary passphrase 7"}}
    )


class UserCreate(StrictModel):
    username: Username
    password: NewPassword
    role: Role = Role.VIEWER
    email: EmailStr | None = None
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "username": "jdoe",
                "password": "a long passphrase 42",
                "role": "operator",
                "email": "jdoe@operator.example",
                "full_name": "Jane Doe",
            }
        },
    )


class UserUpdate(StrictModel):
    email: EmailStr | None = None
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None = None
    role: Role | None = None
    active: StrictBool | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"role": "viewer", "active": False}})


class UserOut(BaseModel):
    username: str
    email: str | None
    full_name: str | None
    role: Role
    active: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    locked_until: datetime | None
    version: int

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        hidden = {"user_id", "password_hash", "failed_logins", "token_generation", "import_job_id"}
        return cls.model_validate(user.model_dump(exclude=hidden))


class UserPage(PageOut):
    items: list[UserOut]


class UserImport(StrictModel):
    """One user of a legacy system: its password hash is kept, so the user signs in as before."""

    username: Username
    password_hash: Annotated[str, StringConstraints(min_length=10, max_length=512)]
    role: Role = Role.VIEWER
    email: EmailStr | None = None
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None = None
    active: bool = True
