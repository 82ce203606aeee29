"""Pages for people: the landing page at ``/``, the interactive docs at ``/docs``, and the
static files they use (our own and a vendored Swagger UI), served from this package so that
everything works without internet.

This layer never imports :mod:`overplane.http`; the application assembles both.
"""
