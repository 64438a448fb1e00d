"""The shop app, with a system check that reads the database, as some projects' checks do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db import connection


class ShopConfig(AppConfig):
    name = "helpers.django_site.shop"

    def ready(self) -> None:
        checks.register(_record_session)


def _record_session(**_: Any) -> list[checks.CheckMessage]:
    """With ``$SHOP_SESSION_FILE`` set, open a session and write its pid there: manage.py runs
    the checks before its command, so the process that runs the daemon then holds a Django
    session when it forks."""
    if path := os.environ.get("SHOP_SESSION_FILE"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            Path(path).write_text(str(cursor.fetchone()[0]), encoding="utf-8")
    return []
