"""examples/test_downstream_property.py, run as its project would run it: pytest on its own."""

import re
import subprocess
import sys

from example_modules import FOLDER


def test_the_downstream_tests_pass_in_a_session_of_their_own(tmp_path):
    # Run from elsewhere: neither this suite's conftest nor its Hypothesis profile applies,
    # and the fixtures come from importstate's pytest plugin, found by its entry point.
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", FOLDER / "test_downstream_property.py", "-q",
         "-p", "no:cacheprovider", "-W", "error"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = ran.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"9 passed in [\d.]+s( \(\d+:\d\d:\d\d\))?", summary), summary
