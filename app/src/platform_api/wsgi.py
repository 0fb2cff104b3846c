"""WSGI entry point for gunicorn: `platform_api.wsgi:app` (one app per worker)."""

from platform_api.factory import create_app

app = create_app()
