"""Storage URLs that read more than one way (search/urls.py) are refused by every command that takes
--storage (and by a study file's `storage:` key) before anything connects or looks a name up; the
same passwords percent-encoded work and are masked. Only loopback is ever contacted: the refused
URLs name 127.0.0.1 with a closed port, and name lookups are made to raise.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from helpers import run_launch, study_file

from search import urls
from search.storage import mask_url, open_storage
from space.errors import ConfigError

# id -> a password that an unencoded URL cannot carry (distinctive pieces: none is in any path)
PASSWORDS = {
    "at": "S3cr@tZq/pXw",
    "slash": "Zq9/Xw7Kj",
    "question": "Zq9?Xw7Kj",
    "hash": "Zq9#Xw7Kj",
    "non-ascii": "Zqä9Xw7Kj",
}
# the same, percent-encoded as the refusal says; "%40" itself must stay a literal password too
ENCODED = {"at": "S3cr@tZq/pXw", "percent-40": "Zq%40Xw7Kj", "non-ascii": "Zqä9Xw7Kj"}


def _userinfo_url(password: str) -> str:
    return f"postgresql://bob:{password}@127.0.0.1:1/db"


def _query_url(password: str) -> str:
    return f"postgresql://bob@127.0.0.1:1/db?password={password}"


# id -> argv before --storage (study files are the repo's smoke study, or a name never run)
COMMANDS = {
    "study": ["--study", "smoke", "--out", "run"],
    "export": ["export", "--study", "smoke"],
    "report": ["report", "--study", "smoke"],
    "finalize": ["finalize", "--study", "smoke", "--epochs", "1"],
    "dashboard": ["dashboard", "--study", "smoke"],
    "report of a bare study name": ["report", "--study", "never-ran"],
    "dashboard of a bare study name": ["dashboard", "--study", "never-ran"],
}
URLS = {f"userinfo {k}": _userinfo_url(v) for k, v in PASSWORDS.items()}
URLS.update(
    {
        "query @": _query_url("Zq9@Xw7Kj"),
        "query #": _query_url("Zq9#Xw7Kj"),
        "query / and ?": _query_url("Zq9/Xw?7Kj"),
        "query @ after a port": "postgresql://127.0.0.1:1/db?password=Zq9@Xw7Kj",
    }
)


def _fragments(url: str) -> set[str]:
    """Every 3-character piece of the URL's password, raw and percent-encoded (but pieces of
    escapes alone, such as the hint's "%40")."""
    secret = url.split("bob:")[1].split("@127")[0] if "bob:" in url else url.split("password=")[1]
    forms = {secret, quote(secret, safe="")}
    pieces = {f[i : i + 3] for f in forms for i in range(len(f) - 2)}
    return {p for p in pieces if not re.fullmatch(r"[%0-9A-F]+", p)}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def no_lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Name lookups and connections recorded, and made to fail: none may happen."""
    calls: list[tuple] = []

    def refuse(name: str):
        def call(*args, **kwargs):
            calls.append((name, args[:2]))
            raise OSError(f"test: {name} called")

        return call

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, refuse(name))
    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse("RDBStorage"))
    return calls


_run = run_launch


@pytest.mark.parametrize("url_id", list(URLS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_url_that_reads_two_ways_is_refused_before_any_lookup(
    command: str,
    url_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    no_lookups: list[tuple],
) -> None:
    url = URLS[url_id]
    rc, out, err = _run([*COMMANDS[command], "--storage", url], tmp_path, monkeypatch, capsys)
    assert rc == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: <arg>: --storage: "), err
    assert "percent-encode" in err and "urllib.parse.quote(password, safe='')" in err
    assert out == "" and no_lookups == []
    assert _tree(tmp_path) == set()
    for piece in _fragments(url):
        assert piece not in out + err, piece


@pytest.mark.parametrize("url_id", ["userinfo at", "userinfo slash", "query @"])
@pytest.mark.parametrize("command", ["study", "export", "report", "finalize", "dashboard"])
def test_a_study_files_storage_key_is_checked_the_same_way(
    command: str,
    url_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    no_lookups: list[tuple],
) -> None:
    url = URLS[url_id]
    path = study_file(tmp_path, "urls", storage=url)
    before = _tree(tmp_path)
    argv = [str(path) if a == "smoke" else a for a in COMMANDS[command]]
    rc, out, err = _run(argv, tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == "" and no_lookups == []
    assert err.splitlines() == [err.strip()] and err.startswith(f"error: {path}: storage: ")
    assert _tree(tmp_path) == before
    for piece in _fragments(url):
        assert piece not in err, piece


@pytest.mark.parametrize("password", list(ENCODED.values()), ids=list(ENCODED))
@pytest.mark.parametrize(
    "command", ["export", "report", "finalize", "dashboard", "report of a bare study name"]
)
def test_an_encoded_password_reaches_the_server_and_is_masked(
    command: str,
    password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    url = _userinfo_url(quote(password, safe=""))
    assert urls.url_problem(url) is None
    rc, out, err = _run([*COMMANDS[command], "--storage", url], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == "" and err.splitlines() == [err.strip()], err
    assert "Connection refused" in err  # finalize names its study file, the others the URL
    assert "postgresql://bob:***@127.0.0.1:1/db" in err or command == "finalize"
    assert _tree(tmp_path) == set()
    for piece in _fragments(url) | _fragments(_userinfo_url(password)):
        assert piece not in err, piece


@pytest.mark.filterwarnings("ignore:Query string argument")
@pytest.mark.parametrize("password", list(ENCODED.values()), ids=list(ENCODED))
def test_an_encoded_query_password_works_on_sqlite_and_is_masked(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}?password={quote(password, safe='')}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="smoke", storage=open_storage(url), directions=["maximize", "minimize"]
    )
    assert study.get_trials() == []
    rc, out, err = _run(
        ["report", "--study", "smoke", "--out", "run", "--storage", url],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert rc == 0, err
    assert f"study smoke (sqlite:///{tmp_path / 'run' / 'study.db'}?password=***)" in out
    for piece in _fragments(url) | {password}:
        assert piece not in out + err, piece


@pytest.mark.parametrize("url", list(URLS.values()), ids=list(URLS))
def test_open_storage_refuses_too_and_masks_to_the_scheme(
    url: str, no_lookups: list[tuple]
) -> None:
    assert mask_url(url) == "postgresql:***"
    with pytest.raises(ConfigError) as err:
        open_storage(url)
    assert err.value.field == "storage" and no_lookups == []
    for piece in _fragments(url):
        assert piece not in str(err.value), piece


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////home/me/runs@2/study.db",  # an '@' in a file path: SQLAlchemy reads it as a path
        "sqlite:///runs/x/study.db?password=Zq%40Xw",
        "postgresql://u:p+w$!&'()*,;=@[::1]:5432/db",  # RFC 3986 sub-delims are fine unencoded
        "postgresql://u@h/db?sslrootcert=/etc/ca.pem&sslmode=require",  # not a password: a path
        "postgresql:///db?host=/var/run/postgresql&password=Zq%2FXw",
    ],
)
def test_urls_that_read_one_way_pass(url: str) -> None:
    assert urls.url_problem(url) is None
    assert urls.check_storage_url(url, "<arg>", "--storage") == url


def test_without_the_check_the_same_url_would_reach_the_driver(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    no_lookups: list[tuple],
) -> None:
    """The control: `no_lookups` does see a connection attempt when the check is off."""
    monkeypatch.setattr(urls, "url_problem", lambda url: None)
    url = _userinfo_url(PASSWORDS["at"])
    with pytest.raises(OSError, match="RDBStorage called"):
        _run(["report", "--study", "never-ran", "--storage", url], tmp_path, monkeypatch, capsys)
    assert [name for name, _ in no_lookups] == ["RDBStorage"]
