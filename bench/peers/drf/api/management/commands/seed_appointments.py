"""``manage.py seed_appointments COUNT BODY``: COUNT appointments made from the JSON object
BODY, in one transaction through the ORM (``bulk_create``); prints their ids, one a line.

The benchmark seeds the peers this way rather than through their API: one commit instead of
one per object, so seeding takes seconds whatever the database's commit costs.
"""

import json

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from api.models import Appointment


class Command(BaseCommand):
    help = "Create COUNT appointments from a JSON body and print their ids."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)
        parser.add_argument("body")

    def handle(self, *args: object, **options: object) -> None:
        fields = json.loads(str(options["body"]))
        count = int(str(options["count"]))
        with transaction.atomic():
            made = Appointment.objects.bulk_create(
                [Appointment(**fields) for _ in range(count)], batch_size=1000
            )
        self.stdout.write("\n".join(str(appointment.pk) for appointment in made))
