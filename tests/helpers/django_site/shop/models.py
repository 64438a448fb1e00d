"""An order, which a job ships."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    shipped_by = models.IntegerField(null=True)
