"""The Django app that brings the ``minion_daemon`` management command."""

from __future__ import annotations

from django.apps import AppConfig


class MinionDaemonConfig(AppConfig):
    name = "minion_daemon.contrib.django"
    # The default label would be "django", the last part of the name.
    label = "minion_daemon"
    verbose_name = "minion-daemon"
