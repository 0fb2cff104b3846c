"""platform_api: the multi-tenant API backend (Flask on gunicorn).

The application is built by platform_api.factory.create_app. This package's import loads
nothing else, so the command line (platform-api migrate, check-config) starts without
Flask, Redis and the API modules: each converge runs it on every app host.
"""
