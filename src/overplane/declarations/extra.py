"""Resources declared outside the package, in modules named by ``OVERPLANE_EXTRA_RESOURCES``.

A deployment (or a test) can add resources without editing the package: a module on the Python
path declares ``RESOURCES`` (a tuple of :class:`Resource`) and ``MIGRATIONS`` (the directory of
the migrations ``overplane migrations new --directory`` wrote for them). Naming the module in
the variable, comma-separated, makes every process (server, workers, CLI, tests) serve those
resources and apply those migrations after the shipped ones.

The variable is read when ``overplane.declarations`` is imported, not through
``overplane.settings``: ``RESOURCES`` is a module constant that the tables, routes and OpenAPI
document are derived from at import, so it must be complete before anything else loads.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from overplane.declarations.resource import Resource

ENV = "OVERPLANE_EXTRA_RESOURCES"


@dataclass(frozen=True, slots=True)
class ExtraDeclarations:
    """What the extra modules declare: their resources and their migration directories."""

    resources: tuple[Resource, ...] = ()
    migrations: tuple[Path, ...] = ()


def load_extra(environ: Mapping[str, str] | None = None) -> ExtraDeclarations:
    """Import the modules named in ``OVERPLANE_EXTRA_RESOURCES`` and collect what they declare.

    Raises ValueError when a module declares no ``RESOURCES`` tuple or names a migration
    directory that does not exist, so a typo fails at start rather than serving less.
    """
    env = os.environ if environ is None else environ
    names = [name.strip() for name in env.get(ENV, "").split(",") if name.strip()]
    resources: list[Resource] = []
    migrations: list[Path] = []
    for name in names:
        module = importlib.import_module(name)
        declared = getattr(module, "RESOURCES", None)
        if not isinstance(declared, tuple) or not all(isinstance(r, Resource) for r in declared):
            raise ValueError(f"{ENV}: module {name} must declare RESOURCES, a tuple of Resource")
        resources += declared
        directory = getattr(module, "MIGRATIONS", None)
        if directory is not None:
            if not Path(directory).is_dir():
                raise ValueError(f"{ENV}: {name}.MIGRATIONS is not a directory: {directory}")
            migrations.append(Path(directory))
    return ExtraDeclarations(tuple(resources), tuple(migrations))
