"""Authentication and authorisation dependencies: one `Policy` per route, checked by one test.

Every route declares a policy: `Depends(PUBLIC)`, `Depends(AUTHENTICATED)` or
`Depends(require(Capability.X))`. `tests/auth/test_route_policies.py` enumerates the app's routes
and fails for any route without one.
"""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth.policy import Capability
from app.auth.security import PasswordHasher, TokenSigner
from app.auth.service import AuthService, Principal
from app.config import Settings
from app.deps import RuntimeDep
from app.errors import Forbidden, Unauthorized
from app.runtime import Runtime

# Relative tokenUrl: Swagger UI resolves it against the docs page, so it also works behind a stage prefix.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="auth/login", auto_error=False)


def auth_service_of(runtime: Runtime) -> AuthService:
    """The auth service over this process's password hasher and token signer (each built once)."""

    def hasher() -> PasswordHasher:
        return runtime.memo("password_hasher", lambda: PasswordHasher(runtime.settings))

    signer = runtime.memo("token_signer", lambda: TokenSigner(runtime.settings, runtime.signing_secret))
    return AuthService(runtime.store, runtime.settings, hasher, signer)


async def get_auth_service(runtime: RuntimeDep) -> AuthService:
    return auth_service_of(runtime)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


class Policy:
    """A route's access rule. `capability=None` with `public=False` means any signed-in user."""

    def __init__(self, capability: Capability | None = None, *, public: bool = False) -> None:
        self.capability = capability
        self.public = public

    def __repr__(self) -> str:
        return "Policy(public)" if self.public else f"Policy({self.capability or 'authenticated'})"

    def __call__(
        self,
        request: Request,
        service: AuthServiceDep,
        token: Annotated[str | None, Depends(bearer_scheme)],
    ) -> Principal:
        if not token:
            raise Unauthorized("sign in first: send 'Authorization: Bearer <access token>'")
        principal = service.authenticate(token)
        request.scope.setdefault("state", {})["actor"] = principal.username
        if self.capability and not principal.can(self.capability):
            raise Forbidden(f"role {principal.role.value!r} may not do this (needs {self.capability.value})")
        return principal


class PublicPolicy(Policy):
    """Open to anyone; depends on nothing, so public routes such as /health never touch the store."""

    def __init__(self) -> None:
        super().__init__(public=True)

    def __call__(self) -> None:  # type: ignore[override]
        return None


PUBLIC = PublicPolicy()
AUTHENTICATED = Policy()
_POLICIES: dict[Capability, Policy] = {capability: Policy(capability) for capability in Capability}


def require(capability: Capability) -> Policy:
    return _POLICIES[capability]


UNTRUSTED_FORWARDING = "forwarded-by-an-untrusted-peer"


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address, for the login rate limit: never one the caller can choose.

    On Lambda, API Gateway's `sourceIp`. Under uvicorn, the connection's peer, or the address
    uvicorn took from X-Forwarded-For of a proxy in FORWARDED_ALLOW_IPS. uvicorn trusts that header
    from 127.0.0.1 unless told otherwise and rewrites the peer before the app sees it, so with no
    trusted proxy configured a request carrying the header may show an address of the client's
    choosing: all such requests share one bucket, and varying the header gains nothing.
    """
    event = request.scope.get("aws.event") or {}
    context = event.get("requestContext") or {}
    source = (context.get("http") or {}).get("sourceIp") or (context.get("identity") or {}).get("sourceIp")
    if isinstance(source, str) and source:
        return source
    if not settings.forwarded_allow_ips.strip() and "x-forwarded-for" in request.headers:
        return UNTRUSTED_FORWARDING
    return request.client.host if request.client else "unknown"


CurrentUser = Annotated[Principal, Depends(AUTHENTICATED)]
