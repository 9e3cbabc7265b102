import os

from hypothesis import HealthCheck, settings

# _postgres: a real PostgreSQL server for the PostgresStore tests.
pytest_plugins = ["pytester", "_postgres"]

# "ci" keeps the whole suite within a few minutes on two cores; "dev" digs deeper.
settings.register_profile(
    "ci", max_examples=50, stateful_step_count=30, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, stateful_step_count=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
