"""``manage.py create_bench_token KEY``: a user with the token the benchmark sends.

``manage.py drf_create_token`` makes a random key; the benchmark's key is chosen by the
benchmark (it is 40 characters, the length of DRF's token keys).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the user 'bench' with the given API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")

    def handle(self, *args: object, **options: str) -> None:
        user, _ = get_user_model().objects.get_or_create(username="bench")
        Token.objects.filter(user=user).delete()
        Token.objects.create(user=user, key=options["key"])
