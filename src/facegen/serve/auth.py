"""Who may call the admin endpoints: a request with ``Authorization: Bearer <token>``.

The token is read once, when the app is built, from the environment variable the settings name
(``admin_token_env``). Without one the admin endpoints refuse everything (403): an unconfigured service cannot be
reloaded by anyone.
"""

# No `from __future__ import annotations`: FastAPI must see the bearer scheme require_admin depends on.
import logging
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

logger = logging.getLogger("facegen.serve")

Credentials = HTTPAuthorizationCredentials | None


def admin_guard(token: str | None, token_env: str) -> Callable[[Credentials], None]:
    """The dependency of the admin routes; built per app because /docs names ``token_env`` in its bearer scheme."""
    if token is None:
        logger.warning("admin endpoints are disabled: %s is not set", token_env)
    bearer = HTTPBearer(auto_error=False, description=f"The token in ${token_env}")

    def require_admin(credentials: Annotated[Credentials, Depends(bearer)]) -> None:
        if token is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"admin endpoints are disabled: {token_env} is not set")
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "admin token required (Authorization: Bearer …)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid admin token", headers={"WWW-Authenticate": "Bearer"}
            )

    return require_admin
