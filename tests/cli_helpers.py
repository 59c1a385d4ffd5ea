"""Run the real `mmops` console script as a subprocess (secrets via the environment only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from ops.dburl import DbUrl

MMOPS = Path(sys.executable).with_name("mmops")


def url_text(url: DbUrl, driver: str = "postgresql") -> str:
    auth = quote(url.username or "", safe="")
    if url.password is not None:
        auth += ":" + quote(url.password, safe="")
    return f"{driver}://{auth}@{url.host}:{url.port}/{url.database}"


def mmops(*args: str, url: DbUrl | None = None, env: dict[str, str] | None = None,
          input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        full_env["DATABASE_URL"] = url_text(url)
    full_env.update(env or {})
    return subprocess.run(
        [str(MMOPS), *args], capture_output=True, text=True, env=full_env, input=input,
        timeout=timeout,
    )
