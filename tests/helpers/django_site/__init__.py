"""A tiny Django project for tests/integration/test_django.py (settings, manage.py, one app)."""
