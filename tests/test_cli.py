"""CLI conventions: exit codes, version, config precedence, secrets, man pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from agkit import __version__, manpages
from agkit.config import read_dotenv, secret
from agkit.exit_codes import ExitCode
from tests.contract.commands import COMMANDS
from tests.helpers import ROOT, run_agkit


def test_version() -> None:
    proc = run_agkit("--version")
    assert proc.returncode == 0 and proc.stdout.decode().strip() == f"agkit {__version__}"


def test_exit_codes_are_unique_and_documented() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130]
    for code in ExitCode:
        assert code.meaning


def test_usage_error_exits_2() -> None:
    proc = run_agkit("pass", "--no-such-flag")
    assert proc.returncode == ExitCode.USAGE
    assert b"No such option" in proc.stderr and proc.stdout == b""
    assert run_agkit("no-such-command").returncode == ExitCode.USAGE


def test_bad_input_exits_3_without_traceback() -> None:
    proc = run_agkit("pass", "--on-error", "fail", input=b"{oops\n")
    assert proc.returncode == ExitCode.BAD_INPUT
    assert b"Traceback" not in proc.stderr and b"line 1" in proc.stderr


def test_env_sets_defaults_and_flags_win() -> None:
    data = b'{"type":"x"}\nnope\n'
    assert run_agkit("pass", input=data, AGKIT_ON_ERROR="fail").returncode == 3
    assert (
        run_agkit("pass", "--on-error", "skip", input=data, AGKIT_ON_ERROR="fail").returncode == 0
    )


def test_config_file_sets_defaults_below_env(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("pass:\n  on-error: fail\n")
    data = b'{"type":"x"}\nnope\n'
    assert run_agkit("pass", input=data, AGKIT_CONFIG=str(cfg)).returncode == 3
    assert (
        run_agkit("pass", input=data, AGKIT_CONFIG=str(cfg), AGKIT_ON_ERROR="skip").returncode == 0
    )
    cfg.write_text("pass: [broken\n")
    proc = run_agkit("pass", input=b"", AGKIT_CONFIG=str(cfg))
    assert b"not valid YAML" in proc.stderr


def test_dotenv_and_secret_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# creds\nexport POLYMARKET_API_KEY='k-123'\nPOLYMARKET_API_SECRET=\"s=1\"\nBROKEN LINE\n"
    )
    assert read_dotenv(env) == {"POLYMARKET_API_KEY": "k-123", "POLYMARKET_API_SECRET": "s=1"}
    monkeypatch.setenv("AGKIT_ENV_FILE", str(env))
    monkeypatch.delenv("POLYMARKET_API_KEY", raising=False)
    assert secret("POLYMARKET_API_KEY") == "k-123"
    monkeypatch.setenv("POLYMARKET_API_KEY", "from-env")
    assert secret("POLYMARKET_API_KEY") == "from-env"
    assert secret("NOT_SET_ANYWHERE_123") is None


def test_internal_errors_print_no_locals(tmp_path: Path) -> None:
    """A crash shows one line, never a traceback with local variables (secrets)."""
    script = tmp_path / "boom.py"
    script.write_text(
        "import sys\nsys.argv=['agkit','pass']\n"
        "import agkit.runner\n"
        "def boom(line):\n    secret_key = 'SECRET-DO-NOT-PRINT'\n    raise RuntimeError('kaput')\n"
        "agkit.runner.read_head = boom\n"
        "from agkit.cli.app import main\nmain()\n"
    )
    import subprocess
    import sys

    from tests.helpers import agkit_env

    proc = subprocess.run(
        [sys.executable, str(script)],
        input=b'{"type":"x"}\n',
        capture_output=True,
        env=agkit_env(),
        cwd=ROOT,
    )
    assert proc.returncode == ExitCode.ERROR
    assert b"SECRET-DO-NOT-PRINT" not in proc.stderr + proc.stdout
    assert b"Traceback" not in proc.stderr
    assert b"kaput" in proc.stderr


def test_man_pages_match_the_command_definitions() -> None:
    wanted = manpages.pages()
    on_disk = {p.name: p.read_text() for p in (ROOT / "man").glob("*.1")}
    stale = sorted(name for name in wanted if on_disk.get(name) != wanted[name])
    extra = sorted(set(on_disk) - set(wanted))
    assert not stale and not extra, f"run `make man`: stale {stale}, extra {extra}"


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_has_a_man_page_with_its_options(argv: tuple[str, ...]) -> None:
    page = (ROOT / "man" / ("agkit-" + "-".join(argv) + ".1")).read_text()
    assert ".SH EXIT STATUS" in page
    help_text = run_agkit(*argv, "--help").stdout.decode()
    for word in help_text.split():
        if word.startswith("--") and word.strip(",") != "--help":
            assert word.strip(",").replace("-", "\\-") in page, word


def test_lazy_command_map_matches_the_modules() -> None:
    from agkit.cli.app import COMMAND_MODULES, COMMANDS, module_commands

    actual = {name: m for m in COMMAND_MODULES for name in module_commands(m).commands}
    assert actual == COMMANDS
    helpers = {"agkit.cli.app", "agkit.cli.options", "agkit.cli.__init__"}
    modules = {f"agkit.cli.{p.stem}" for p in (ROOT / "agkit" / "cli").glob("*.py")} - helpers
    registering = {
        m
        for m in modules
        if "def register(" in (ROOT / "agkit" / "cli" / (m.split(".")[-1] + ".py")).read_text()
    }
    assert registering == set(COMMAND_MODULES), (
        "add the module's commands to COMMANDS in agkit/cli/app.py"
    )


def test_a_stage_builds_only_its_own_command() -> None:
    code = "import sys; from agkit.cli.app import run; run(['pass']); print(sorted(m for m in sys.modules if m.startswith('agkit.cli.')))"
    import subprocess
    import sys

    from tests.helpers import agkit_env

    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=b"",
        capture_output=True,
        env=agkit_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert (
        proc.stdout.decode().strip() == "['agkit.cli.app', 'agkit.cli.basic', 'agkit.cli.options']"
    )
