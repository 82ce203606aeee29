"""Every resource of the API, declared once.

To add a resource: declare it in the module of its API module (or a new one), add it to
``RESOURCES`` and run ``overplane migrations new -m "add …"`` (``overplane`` derives everything
else). Modules named by ``OVERPLANE_EXTRA_RESOURCES`` add theirs (``declarations/extra.py``).
Names, paths, id prefixes and table names are checked for clashes at import.
"""

from overplane.declarations.accounts import PARTY_LINK
from overplane.declarations.crm import APPOINTMENT
from overplane.declarations.extra import ExtraDeclarations, load_extra
from overplane.declarations.resource import READ_ONLY_KEYS, Field, Resource, check_unique

#: Resources and migrations from the modules named by OVERPLANE_EXTRA_RESOURCES.
EXTRA: ExtraDeclarations = load_extra()
RESOURCES: tuple[Resource, ...] = (PARTY_LINK, APPOINTMENT, *EXTRA.resources)
check_unique(RESOURCES)

__all__ = [
    "APPOINTMENT",
    "EXTRA",
    "PARTY_LINK",
    "READ_ONLY_KEYS",
    "RESOURCES",
    "Field",
    "Resource",
    "check_unique",
]
