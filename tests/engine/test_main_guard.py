"""A script that trains on several processes without the `if __name__ == "__main__":` guard gets one line, before
any process or run folder exists (spawn re-imports the script in each process: a traceback, a stray folder, a hang)."""

from __future__ import annotations

import subprocess
import sys

TRAIN = ('pixelforge.train("{data}", model="simple_cnn", weights="none", strategy="full", img_size=32, epochs=1, '
         'accelerator="cpu", devices=2, out="run", quiet=True)')


def _run(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "user_script.py"
    script.write_text(body)
    return subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_training_on_two_processes_at_a_scripts_top_level_is_one_clear_error(tmp_path, shapes_dir):
    result = _run(tmp_path, "import pixelforge\nfrom pixelforge.errors import PixelforgeError\ntry:\n"
                            f"    {TRAIN.format(data=shapes_dir)}\n"
                            "except PixelforgeError as exc:\n    print(exc)\n")
    assert result.returncode == 0, result.stderr
    assert "user_script.py, line 4" in result.stdout and 'if __name__ == "__main__":' in result.stdout
    assert "bootstrapping" not in result.stderr and not (tmp_path / "run").exists()


def test_a_call_inside_a_function_called_from_the_top_level_is_refused_too(tmp_path):
    body = ("from pixelforge.engine.main_guard import check_main_guard\n"
            "def main():\n    check_main_guard()\n"
            "main()\n")
    result = _run(tmp_path, body)
    assert result.returncode == 1 and "PixelforgeError: " in result.stderr and "line 4" in result.stderr


def test_the_guarded_call_and_a_function_defined_above_it_pass(tmp_path):
    body = ("from pixelforge.engine.main_guard import check_main_guard\n"
            "def main():\n    check_main_guard()\n"
            "if __name__ == '__main__':\n"
            "    main()\n"
            "    print('ok')\n")
    result = _run(tmp_path, body)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_python_dash_c_has_no_script_to_import_again(tmp_path):
    result = subprocess.run([sys.executable, "-c", "from pixelforge.engine.main_guard import check_main_guard; "
                             "check_main_guard(); print('ok')"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
