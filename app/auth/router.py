# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.auth.deps import AUTHENTICATED, PUBLIC, AuthServiceDep, CurrentUser, client_ip, require
from app.auth.policy import Capability
from app.auth.schemas import (
    LoginForm,
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
from app.deps import PageParams, domain_router, json_body, media_type, route_path, validated
from app.errors import FieldCode, InvalidInput, ProblemType, UnsupportedMediaType, code_of
from app.openapi import error_responses, invalid, problem, request_body

router = domain_router(prefix="/auth", tags=["auth"])
AdminUser = Annotated[Principal, Depends(require(Capability.USERS_ADMIN))]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON = "application/json"


async def _login_form(request: Request) -> LoginRequest:
    """Accepts the OAuth2 password form (Swagger UI's Authorize) or a JSON body."""
    content_type = media_type(request)
    if content_type == JSON:
        return await json_body(request, LoginRequest, (JSON,))
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return validated(LoginForm, dict((await request.form()).items()))
    raise UnsupportedMediaType("send application/json or application/x-www-form-urlencoded")


@router.post(
    "/login",
    operation_id="auth_login",
    summary="Sign in with username and password (OAuth2 password flow or JSON)",
    response_model=TokenPair,
    dependencies=[Depends(PUBLIC)],
    openapi_extra=request_body({"application/x-www-form-urlencoded": LoginForm, "application/json": LoginRequest}),
    responses=error_responses(
        ProblemType.BAD_REQUEST,
        ProblemType.UNAUTHORIZED,
        ProblemType.UNSUPPORTED_MEDIA_TYPE,
        invalid(("body.username", FieldCode.MISSING)),
        ProblemType.TOO_MANY_REQUESTS,
        ProblemType.SERVICE_BUSY,
    ),
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
    responses=error_responses(ProblemType.UNAUTHORIZED, invalid(("body.refresh_token", FieldCode.MISSING))),
)
def refresh(body: RefreshRequest, response: Response, service: AuthServiceDep) -> TokenPair:
    response.headers.update(NO_STORE)
    return service.refresh(body.refresh_token)


@router.post(
    "/logout",
    operation_id="auth_logout",
    summary="End this session: revokes the access token and its refresh-token family",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(invalid(("body.refresh_token", FieldCode.TOO_LONG))),
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
)
def me(principal: CurrentUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.me(principal))


@router.put(
    "/me/password",
    operation_id="auth_change_password",
    summary="Change your password; every other session ends and a new token pair is returned",
    response_model=TokenPair,
    responses=error_responses(
        invalid(
            ("body.current_password", FieldCode.WRONG_PASSWORD), ("body.new_password", FieldCode.PASSWORD_TOO_SHORT)
        ),
        ProblemType.SERVICE_BUSY,
    ),
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
        raise InvalidInput("path.username", str(exc), code=code_of(exc)) from None


@router.get(
    "/users",
    operation_id="users_list",
    summary="List users (admin), ordered by username",
    response_model=UserPage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.limit", FieldCode.TOO_LARGE))),
)
def list_users(_: AdminUser, service: AuthServiceDep, paging: PageParams) -> UserPage:
    return UserPage.of(service.list_users(limit=paging.limit, cursor=paging.cursor), UserOut.of)


@router.post(
    "/users",
    operation_id="users_create",
    summary="Create a user (admin)",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        problem(ProblemType.CONFLICT, ("body.username", FieldCode.ALREADY_EXISTS)),
        invalid(("body.username", FieldCode.INVALID_USERNAME), ("body.password", FieldCode.PASSWORD_TOO_SHORT)),
        ProblemType.SERVICE_BUSY,
    ),
)
def create_user(
    body: UserCreate, admin: AdminUser, service: AuthServiceDep, request: Request, response: Response
) -> UserOut:
    user = service.create_user(admin.username, body)
    response.headers["Location"] = route_path(request, "users_get", username=user.username)
    return UserOut.of(user)


@router.get(
    "/users/{username}",
    operation_id="users_get",
    summary="One user (admin)",
    response_model=UserOut,
    responses=error_responses(ProblemType.NOT_FOUND, invalid(("path.username", FieldCode.PATTERN_MISMATCH))),
)
def get_user(username: UsernamePath, _: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.get_user(_username(username)))


@router.patch(
    "/users/{username}",
    operation_id="users_update",
    summary="Change a user's role, active flag, email or name (admin); disabling ends their sessions",
    response_model=UserOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.PRECONDITION_FAILED,
        invalid(("path.username", FieldCode.PATTERN_MISMATCH), ("body.role", FieldCode.INVALID_CHOICE)),
    ),
)
def update_user(username: UsernamePath, body: UserUpdate, admin: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.update_user(admin.username, _username(username), body))


@router.delete(
    "/users/{username}",
    operation_id="users_delete",
    summary="Delete a user (admin); the last active admin can't be deleted",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        ProblemType.NOT_FOUND, ProblemType.PRECONDITION_FAILED, invalid(("path.username", FieldCode.PATTERN_MISMATCH))
    ),
)
def delete_user(username: UsernamePath, admin: AdminUser, service: AuthServiceDep) -> Response:
    service.delete_user(admin.username, _username(username))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{username}/reset-password",
    operation_id="users_reset_password",
    summary="Set a new password for a user (admin); ends their sessions",
    response_model=UserOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.PRECONDITION_FAILED,
        invalid(("body.new_password", FieldCode.PASSWORD_TOO_SHORT)),
        ProblemType.SERVICE_BUSY,
    ),
)
def reset_password(username: UsernamePath, body: PasswordReset, admin: AdminUser, service: AuthServiceDep) -> UserOut:
    return UserOut.of(service.reset_password(admin.username, _username(username), body.new_password))
