"""Root conftest: the drill fixtures live in fixtures/ and are registered as plugins here.

The drill configuration is loaded once, lazily, only when drills are collected, so the project's own
tests (tests/) never need a drills.toml.
"""

pytest_plugins = ["fixtures.drill_session", "fixtures.drills", "fixtures.restored", "fixtures.scheduling"]
