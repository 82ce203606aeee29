"""The peers of the benchmark (issue 14): a Django REST Framework app (``drf/``) and a FastAPI +
SQLModel app (``fastapi_sqlmodel/``) serving Overplane's appointments and party links, and the
phase that measures them against Overplane (``phase.py``; ``python -m bench.peers``).

The apps run in a virtual environment of their own (``.bench-peers/venv``): nothing here
imports them, and the server never imports anything from ``bench/``.
"""
