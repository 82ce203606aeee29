"""Checks of what clients send, shared by the API (``http/``) and the dashboard (``web/``).

``fields.py`` checks an object's field values against its declaration; ``list_query.py``
parses a list's query string (filters, cursors, paging). Both raise the errors of
:mod:`overplane.errors`, so the API renders them as its error JSON and the dashboard shows
their messages beside the form fields.
"""
