"""The `pixelforge` command's process entry (pixelforge/__main__.py): the console script runs it, it runs the CLI
with its exit codes, and its garbage-collector settings stay in that process."""

import gc
import subprocess
import sys
from importlib.metadata import entry_points

import pixelforge.__main__ as entry


def test_console_script_is_the_entry_with_the_gc_settings():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "pixelforge"]
    assert script.value == "pixelforge.__main__:main"


def test_entry_runs_the_cli_with_its_exit_codes_and_collects_less_often():
    probe = ("import gc, sys; sys.argv = ['pixelforge'] + sys.argv[1:]\n"
             "import pixelforge.cli as cli\n"
             "real = cli.main\n"
             "def main():\n"
             "    import os\n"
             "    print('threshold', gc.get_threshold(), 'spincount', os.environ.get('GOMP_SPINCOUNT'), flush=True)\n"
             "    real()\n"
             "cli.main = main\n"
             "from pixelforge.__main__ import main as entry_main\n"
             "entry_main()\n")
    ok = subprocess.run([sys.executable, "-c", probe, "tasks"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"threshold {entry.GC_THRESHOLD} spincount {entry.GOMP_SPINCOUNT}" in ok.stdout and "classify" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "pixelforge", "evaluate", "/no/such/run"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_importing_the_entry_leaves_this_process_settings_alone():
    import os

    assert gc.get_threshold() != entry.GC_THRESHOLD
    assert os.environ.get("GOMP_SPINCOUNT") != entry.GOMP_SPINCOUNT
