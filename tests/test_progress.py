"""Progress bars: silent when not a terminal or the job is small, forced on or off by UNSEEN_PROGRESS."""

from unseen import _progress


def test_progress_is_quiet_without_a_terminal(monkeypatch):
    monkeypatch.delenv("UNSEEN_PROGRESS", raising=False)
    assert not _progress.enabled()  # pytest captures stderr: not a TTY
    assert isinstance(_progress.progress(10**9, "x"), _progress._Silent)


def test_progress_can_be_forced(monkeypatch, capsys):
    monkeypatch.setenv("UNSEEN_PROGRESS", "1")
    assert isinstance(_progress.progress(10, "small"), _progress._Silent)  # below MIN_ROWS: no bar
    bar = _progress.progress(_progress.MIN_ROWS, "big job")
    bar.update(_progress.MIN_ROWS)
    bar.close()
    assert "big job" in capsys.readouterr().err
    monkeypatch.setenv("UNSEEN_PROGRESS", "0")
    assert not _progress.enabled()
