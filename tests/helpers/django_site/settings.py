"""Settings of the test project: its PostgreSQL database is ``$SHOP_DSN`` (a libpq DSN), and
``local`` is an SQLite database, which minion-daemon's helpers must refuse."""

from __future__ import annotations

import os

from psycopg import conninfo

_params = conninfo.conninfo_to_dict(os.environ["SHOP_DSN"])

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _params.pop("dbname"),
        "USER": _params.pop("user", ""),
        "PASSWORD": _params.pop("password", ""),
        "HOST": _params.pop("host", ""),
        "PORT": _params.pop("port", ""),
        "OPTIONS": _params,
    },
    "local": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
INSTALLED_APPS = ["minion_daemon.contrib.django", "helpers.django_site.shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SECRET_KEY = "only-for-tests"
USE_TZ = True
