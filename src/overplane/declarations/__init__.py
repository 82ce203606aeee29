"""Every resource of the API, declared once.

To add a resource: declare it in the module of its API module (or a new one), add it to
``RESOURCES`` and write a migration (``overplane`` derives everything else).
"""

from overplane.declarations.accounts import PARTY_LINK
from overplane.declarations.crm import APPOINTMENT
from overplane.declarations.resource import READ_ONLY_KEYS, Field, Resource

RESOURCES: tuple[Resource, ...] = (PARTY_LINK, APPOINTMENT)

__all__ = ["APPOINTMENT", "PARTY_LINK", "READ_ONLY_KEYS", "RESOURCES", "Field", "Resource"]
