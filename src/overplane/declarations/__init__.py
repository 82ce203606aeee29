"""Every resource of the API, declared once.

To add a resource: declare it in the module of its API module (or a new one), add it to
``RESOURCES`` and run ``overplane migrations new -m "add …"`` (``overplane`` derives everything
else). Names, paths, id prefixes and table names are checked for clashes at import.
"""

from overplane.declarations.accounts import PARTY_LINK
from overplane.declarations.crm import APPOINTMENT
from overplane.declarations.resource import READ_ONLY_KEYS, Field, Resource, check_unique

RESOURCES: tuple[Resource, ...] = (PARTY_LINK, APPOINTMENT)
check_unique(RESOURCES)

__all__ = [
    "APPOINTMENT",
    "PARTY_LINK",
    "READ_ONLY_KEYS",
    "RESOURCES",
    "Field",
    "Resource",
    "check_unique",
]
