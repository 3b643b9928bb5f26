"""The one plugin mechanism: a :class:`Registry` per kind (patch encoders, tissue detectors, models, cohort figures),
filled by importing every module of the kind's plugin folder.

Built-ins are plugins like any user's: each is a module in its kind's folder that calls ``REGISTRY.register(...)``
at import. Planning imports the folders, so a plugin keeps heavy imports (torch, timm, matplotlib) inside the
functions it names. A plugin that fails to import fails every load with its module, file and error
(:class:`PluginImportError`): it never silently drops out of the registry. The folders are part of the stages' code
fingerprints (``mosare.core.provenance.STAGE_SOURCES``), so editing a plugin reruns what it changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class PluginError(ValueError):
    """A plugin is registered twice, or asked for under a name nobody registered."""


class PluginImportError(ImportError):
    """A plugin module raised while it was imported; names the module, its file and the error."""


class Registry(Generic[T]):
    """The registered plugins of one ``kind``, by name, loaded from the modules of ``package``.

    ``name_of`` gives an entry's name; ``check``, if given, raises ValueError for an entry the kind cannot use.
    Registering a second, different entry under a known name is a :class:`PluginError` naming both (re-importing
    the same module is not).
    """

    def __init__(
        self, kind: str, package: str, name_of: Callable[[T], str], check: Callable[[T], None] | None = None
    ) -> None:
        self.kind = kind
        self.package = package
        self._name_of = name_of
        self._check = check
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, entry: T) -> T:
        """Add ``entry`` (a plugin module calls this at import); returns it, so it also works as a decorator."""
        name = self._name_of(entry)
        if self._check is not None:
            self._check(entry)
        known = self._entries.get(name)
        if known is not None and known != entry and not _same_definition(known, entry):
            raise PluginError(f"{self.kind} {name!r} is registered twice ({_origin(known)} and {_origin(entry)})")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register an entry of their own clean up with this)."""
        self._entries.pop(name, None)

    def plugin_dir(self) -> Path:
        """The folder whose modules are this kind's plugins."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise PluginError(f"{self.kind} plugin package {self.package} is not importable")
        return Path(next(iter(spec.submodule_search_locations)))

    def load(self) -> None:
        """Import every module of the plugin folder (once it has worked; a failure is raised again on every call)."""
        if self._loaded:
            return
        for module in sorted(pkgutil.iter_modules([str(self.plugin_dir())]), key=lambda found: found.name):
            dotted = f"{self.package}.{module.name}"
            try:
                importlib.import_module(dotted)
            except Exception as error:
                raise PluginImportError(
                    f"{self.kind} plugin {dotted} ({self.plugin_dir() / module.name}.py) failed to import: "
                    f"{type(error).__name__}: {error}. Fix or remove that file."
                ) from error
        self._loaded = True

    def entries(self) -> dict[str, T]:
        """Every registered entry by name, in registration order (plugin modules are imported by file name)."""
        self.load()
        return dict(self._entries)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self.entries())

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a :class:`PluginError` listing the known names otherwise."""
        entries = self.entries()
        if name not in entries:
            raise PluginError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(entries) or 'none'} "
                f"(a new one is one module in {self.plugin_dir()})"
            )
        return entries[name]


def _definition(entry: object) -> str | None:
    """The qualified name of an entry that is a class, or of its ``draw`` function; None for plain data."""
    for candidate in (entry, getattr(entry, "draw", None)):
        if isinstance(candidate, type) or (callable(candidate) and hasattr(candidate, "__qualname__")):
            return f"{candidate.__module__}.{candidate.__qualname__}"
    return None


def _same_definition(known: object, entry: object) -> bool:
    """A class or function defined again by importing its module again (equal data entries are caught before)."""
    return _definition(known) is not None and _definition(known) == _definition(entry)


def _origin(entry: object) -> str:
    """Where an entry comes from, for error messages."""
    builder = getattr(entry, "builder", None)
    return _definition(entry) or (builder if isinstance(builder, str) else repr(entry))
