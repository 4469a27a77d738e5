"""``[tool.dockyard]`` parsed into one typed, validated object.

Every key is declared once, as a field of :class:`Settings` annotated
``Annotated[<type>, Key(default, help, check)]``: the field's name is the key, its type what
the value becomes, and its :class:`Key` holds the default, the help text and the check.
:data:`KEYS`, read from those fields, drives parsing, the ``DOCKYARD_<KEY>`` overrides and the
generated config reference, so they cannot drift apart (nox keeps its options the same way,
in ``_options.py``). Adding a key is adding one field.

The fields live in :mod:`~dockyard.settings.keys`, the checks they name in
:mod:`~dockyard.settings.checks`, the readers of each kind of value (TOML, or a variable's
string) in :mod:`~dockyard.settings.readers`, and :func:`load_settings` in
:mod:`~dockyard.settings.load`.
"""

from dockyard.settings.checks import SERVICE_KEYS, settle_problem
from dockyard.settings.keys import KEYS, Key, Settings, reference_markdown
from dockyard.settings.load import default_lock_dir, load_settings, read_table
from dockyard.settings.readers import ServiceTables

__all__ = [
    "KEYS",
    "SERVICE_KEYS",
    "Key",
    "ServiceTables",
    "Settings",
    "default_lock_dir",
    "load_settings",
    "read_table",
    "reference_markdown",
    "settle_problem",
]
