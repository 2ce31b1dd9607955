import subprocess
import sys


def test_controller_import_does_not_pull_ray():
    code = (
        "import sys, dropsearch.controller as c; before = 'ray' in sys.modules; c.ControllerSearcher; "
        "print(before, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
