from __future__ import annotations

import stat
from pathlib import Path

import pytest

from wafile.config import MIN_SECRET_LEN, LogFormat, load_settings
from wafile.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No WAFILE_* from the developer's shell; run in an empty folder."""
    import os

    for name in list(os.environ):
        if name.startswith("WAFILE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_serve_the_embedded_case(tmp_path: Path) -> None:
    s = load_settings()
    assert s.data_dir == Path("./var")
    assert s.sandbox is True
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.log_level == "INFO" and s.log_format is LogFormat.TEXT
    db = tmp_path / "var" / "wafile.db"
    assert s.effective_database_url == f"sqlite+aiosqlite:///{db}"
    assert s.effective_media_url == (tmp_path / "var" / "media").as_uri()
    assert s.effective_public_url == "http://127.0.0.1:8000"
    assert s.is_sqlite


@pytest.mark.parametrize(
    ("given", "folder"),
    [("file://./var/media", "var/media"), ("file://store", "store"), ("file://a%20b", "a b")],
)
def test_relative_media_folder_is_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, folder: str
) -> None:
    monkeypatch.setenv("WAFILE_MEDIA_URL", given)
    assert load_settings().effective_media_url == (tmp_path / folder).as_uri()


def test_absolute_media_urls_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("file:///srv/media", "file://localhost/srv/media", "s3://bucket/p"):
        monkeypatch.setenv("WAFILE_MEDIA_URL", url)
        assert load_settings().effective_media_url == url


def test_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = load_settings()
    path = tmp_path / "var" / "secret_key"
    assert len(first.secret_key) >= MIN_SECRET_LEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_settings().secret_key == first.secret_key
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["secret_key"]  # no temp left


def test_given_secret_is_used_and_nothing_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WAFILE_SECRET_KEY", "s" * 40)
    assert load_settings().secret_key == "s" * 40
    assert not (tmp_path / "var").exists()


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WAFILE_PORT=9001\nWAFILE_LOG_FORMAT=json\nWAFILE_SANDBOX=0\n")
    monkeypatch.setenv("WAFILE_PORT", "9002")  # the environment wins over .env
    s = load_settings()
    assert s.port == 9002
    assert s.log_format is LogFormat.JSON
    assert s.sandbox is False
    assert s.effective_public_url == "http://127.0.0.1:9002"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_are_made_async(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("WAFILE_DATABASE_URL", given)
    assert load_settings().effective_database_url == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WAFILE_PORT", "eighty"),
        ("WAFILE_PORT", "70000"),
        ("WAFILE_SANDBOX", "maybe"),
        ("WAFILE_LOG_LEVEL", "loud"),
        ("WAFILE_LOG_FORMAT", "xml"),
        ("WAFILE_DATABASE_URL", "mysql://root@localhost/x"),
        ("WAFILE_MEDIA_URL", "ftp://host/media"),
        ("WAFILE_PUBLIC_URL", "example.com"),
    ],
)
def test_malformed_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = info.value.detail
    assert message.startswith(f"{name}:")
    assert "\n" not in message


def test_short_secret_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAFILE_SECRET_KEY", "hunter2")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.detail.startswith("WAFILE_SECRET_KEY:")
    assert "hunter2" not in info.value.detail


def test_unwritable_data_dir_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("WAFILE_DATA_DIR", str(tmp_path / "afile" / "var"))
    with pytest.raises(ConfigError, match=r"^WAFILE_DATA_DIR: "):
        load_settings()


def test_cli_overrides_are_validated() -> None:
    s = load_settings()
    assert s.with_overrides(host="0.0.0.0", port=9100).port == 9100
    assert s.with_overrides(host=None, port=None) is s
    with pytest.raises(ConfigError, match=r"^WAFILE_PORT: "):
        s.with_overrides(port=0)


def test_repr_hides_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAFILE_SECRET_KEY", "z" * 40)
    assert "z" * 40 not in repr(load_settings())
