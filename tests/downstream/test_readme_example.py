import re
from pathlib import Path

HERE = Path(__file__).parent


def test_the_readme_example_is_what_this_project_runs():
    readme = (HERE.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Testing your importer"):]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    tests = (HERE / "test_acme.py").read_text(encoding="utf-8")
    assert tests.split('"""\n\n', 1)[1] == example
