"""API keys as the API and the CLI (`--json`) show them: the key itself only once, when made."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field


class ApiKeyPublic(BaseModel):
    id: int
    prefix: Annotated[str, Field(description="密钥前缀：用于列表与吊销，不是密钥本身")]
    role: str
    department_uscc: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: Annotated[str, Field(description="完整密钥：只在创建时给出一次")]
