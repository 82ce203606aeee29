"""DRF's TokenAuthentication reads ``Authorization: Token <key>``; the benchmark sends
``Authorization: Bearer <key>``. Changing the keyword is the documented way to accept it."""

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"
