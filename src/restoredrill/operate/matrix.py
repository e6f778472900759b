"""`restoredrill matrix`: the database x layer cells of a configuration as a CI matrix.

Fleet scale on an engine that already exists: CI's own matrix runs one cell per job (`restoredrill run -k
SELECT`), each job uploads its evidence, and `restoredrill report --merge` builds the one report. The
output is `{"include": [...]}` for `strategy.matrix: ${{ fromJSON(...) }}`.

A cell's selector is a pytest `-k` expression matching the drill items of one database and layer: each
item's id starts with its drill's (`test_amcheck[shop-logical]`, `test_recovery[shop-pgbackrest-latest]`),
so `[<database>-<layer>` selects them. A database whose name extends another's (`shop` and
`shop-logical-eu`) could be matched by the shorter selector: those are excluded by name.
"""

from __future__ import annotations

import json
import re

from restoredrill.config import DrillConfig
from restoredrill.errors import ConfigError
from restoredrill.operate.listing import cells

# What pytest's -k expression language accepts in one identifier (pytest 8: \w : + - . [ ] \ /).
_IDENT = re.compile(r"^[\w:+\-.\[\]\\/]+$")


def selector(config: DrillConfig, database: str, layer: str) -> str:
    if not _IDENT.match(database):
        raise ConfigError(
            f"database '{database}' cannot be selected with pytest -k (use letters, digits, '_', '-', '.' in its name)"
        )
    prefix = f"[{database}-{layer}"
    others = [f"[{other}-{layer}" for other in config.databases if other != database]
    clashes = [other for other in others if other.startswith(prefix)]
    return " and ".join([prefix, *(f"not {clash}" for clash in clashes)])


def matrix(config: DrillConfig) -> dict[str, list[dict[str, str]]]:
    include = [
        {
            "name": f"{database}-{layer}",
            "database": database,
            "layer": layer,
            "select": selector(config, database, layer),
        }
        for database, layer in cells(config)
    ]
    if not include:
        raise ConfigError("the configuration names no database with a layer to drill: the matrix would be empty")
    return {"include": include}


def render(config: DrillConfig) -> str:
    """One line of JSON: `echo "matrix=$(restoredrill matrix)" >> "$GITHUB_OUTPUT"` needs it on one line."""
    return json.dumps(matrix(config), separators=(",", ":"))
