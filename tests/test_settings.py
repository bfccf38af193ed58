"""Settings follow the environment: read again whenever a SIGHTLINE_ variable, HOME or the
working folder changes, even though a process reads them many times a request."""

from workers.settings import load_settings


def test_settings_follow_environment_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGHTLINE_SEARCH_TIMEOUT_SECONDS", "7")
    assert load_settings().search_timeout_seconds == 7.0
    assert load_settings() is load_settings()  # unchanged environment: the same object
    monkeypatch.setenv("SIGHTLINE_SEARCH_TIMEOUT_SECONDS", "9")
    assert load_settings().search_timeout_seconds == 9.0
    monkeypatch.delenv("SIGHTLINE_SEARCH_TIMEOUT_SECONDS")
    assert load_settings().search_timeout_seconds == 60.0
    monkeypatch.setenv("SIGHTLINE_HOME", "relative-home")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert load_settings().home == tmp_path / "a" / "relative-home"
    monkeypatch.chdir(tmp_path / "b")
    assert load_settings().home == tmp_path / "b" / "relative-home"
