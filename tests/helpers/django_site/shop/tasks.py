"""The test project's task, loaded by the daemon through an entry point (test_django.py makes
the distribution): it ships an order through the ORM and says where it ran."""

from __future__ import annotations

import os
from typing import Any

from django.db import connection

from helpers.django_site.shop.models import Order


def ship(job: Any, order_id: int) -> dict[str, int]:
    """Mark the order shipped by this process; its pid and the pid of its database session."""
    Order.objects.filter(pk=order_id).update(shipped_by=os.getpid())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (session,) = cursor.fetchone()
    return {"pid": os.getpid(), "session": session}
