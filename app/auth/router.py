# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api_types import Cursor
from app.auth.deps import AUTHENTICATED, PUBLIC, AuthServiceDep, CurrentUser, client_ip, require
from app.auth.policy import Capability
from app.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    PasswordChange,
    PasswordReset,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
    normalise_username,
)
from app.auth.service import Principal
from app.errors import UnsupportedMediaType
from app.openapi import error_responses

router = APIRouter(prefix="/auth", tags=["auth"])
AdminUser = Annotated[Principal, Depends(require(Capability.USERS_ADMIN))]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "maxLength": 64},
                        "password": {"type": "string", "format": "password", "maxLength": 1024},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}},
        },
    }
}


async def _login_form(request: Request) -> LoginRequest:
    """Accepts the OAuth2 password form (Swagger UI's Authorize) or a JSON body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            try:
                data: Any = json.loads(await request.body())
            except ValueError:
                raise RequestValidationError(
                    [
                        {
                            "type": "json_invalid",
                            "loc": ("body",),
                            "msg": "body is not valid JSON",
                            "input": None,
                        }
                    ]
                ) from None
            return LoginRequest.model_validate(data)
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            fields = {key: value for key, value in form.items() if key in ("username", "password")}
            return LoginRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    raise UnsupportedMediaType("send application/json or application/x-www-form-urlencoded")


@router.post(
    "/login",
    operation_id="auth_login",
    summary="Sign in with username and password (OAuth2 password flow or JSON)",
    response_model=TokenPair,
    dependencies=[Depends(PUBLIC)],
    openapi_extra=_LOGIN_BODY,
    responses=error_responses(401, 415, 422, 429, 503),
)
async def login(request: Request, response: Response, service: AuthServiceDep) -> TokenPair:
    credentials = await _login_form(request)
    response.headers.update(NO_STORE)
    address = client_ip(request, service.settings)
    # Off the event loop: the password hash takes ~100 ms of CPU (and the store calls block too).
    return await run_in_threadpool(service.login, credentials.username, credentials.password, client_ip=address)


@router.post(
    "/refresh",
    operation_id="auth_refresh",
    summary="Exchange a refresh token for a new token pair (the old refresh token stops working)",
    response_model=TokenPair,
    dependencies=[Depends(PUBLIC)],
    responses=error_responses(401, 422),
)
def refresh(body: RefreshRequest, response: Response, service: AuthServiceDep) -> TokenPair:
    response.headers.update(NO_STORE)
    return service.refresh(body.refresh_token)


@router.post(
    "/logout",
    operation_id="auth_logout",
    summary="End this session: revokes the access token and its refresh-token family",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 422),
)
def logout(principal: CurrentUser, service: AuthServiceDep, body: LogoutRequest | None = None) -> Response:
    service.logout(principal, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


@router.get(
    "/me",
    operation_id="auth_me",
    summary="The signed-in user",
    response_model=UserOut,
    dependencies=[Depends(AUTHENTICATED)],
    responses=error_responses(401),
)
def me(principal: CurrentUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.me(principal))


@router.put(
    "/me/password",
    operation_id="auth_change_password",
    summary="Change your password; every other session ends and a new token pair is returned",
    response_model=TokenPair,
    responses=error_responses(401, 422, 503),
)
def change_password(
    body: PasswordChange, principal: CurrentUser, service: AuthServiceDep, response: Response
) -> TokenPair:
    response.headers.update(NO_STORE)
    return service.change_password(principal, body)


# As stored, any case: the path is read case-insensitively.
UsernamePath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")]


def _username(username: str) -> str:
    try:
        return normalise_username(username)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("path", "username"), "msg": str(exc), "input": username}]
        ) from None


@router.get(
    "/users",
    operation_id="users_list",
    summary="List users (admin), ordered by username",
    response_model=UserPage,
    responses=error_responses(404, 401, 403, 422),
)
def list_users(
    _: AdminUser,
    service: AuthServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> UserPage:
    page = service.list_users(limit=limit, cursor=cursor)
    return UserPage(items=[UserOut.of(user) for user in page.items], next_cursor=page.next_cursor)


@router.post(
    "/users",
    operation_id="users_create",
    summary="Create a user (admin)",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422, 503),
)
def create_user(body: UserCreate, admin: AdminUser, service: AuthServiceDep, response: Response) -> UserOut:
    user = service.create_user(admin.username, body)
    response.headers["Location"] = f"users/{user.username}"
    return UserOut.of(user)


@router.get(
    "/users/{username}",
    operation_id="users_get",
    summary="One user (admin)",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_user(username: UsernamePath, _: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.get_user(_username(username)))


@router.patch(
    "/users/{username}",
    operation_id="users_update",
    summary="Change a user's role, active flag, email or name (admin); disabling ends their sessions",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 412, 422),
)
def update_user(username: UsernamePath, body: UserUpdate, admin: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.update_user(admin.username, _username(username), body))


@router.delete(
    "/users/{username}",
    operation_id="users_delete",
    summary="Delete a user (admin); the last active admin can't be deleted",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 412),
)
def delete_user(username: UsernamePath, admin: AdminUser, service: AuthServiceDep) -> Response:
    service.delete_user(admin.username, _username(username))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{username}/reset-password",
    operation_id="users_reset_password",
    summary="Set a new password for a user (admin); ends their sessions",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def reset_password(username: UsernamePath, body: PasswordReset, admin: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.reset_password(admin.username, _username(username), body.new_password))
