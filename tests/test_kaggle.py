"""The competition download through the real Kaggle client, against the local fake Kaggle API; credentials."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from fake_kaggle import TOKEN, USERNAME, FakeKaggle, point_client_at
from perturbkit.cli import main
from perturbkit.data import load_dataset
from perturbkit.io import MARKER
from perturbkit.kaggle import credential_sources
from perturbkit.data.layout import COMPETITION

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_ENV = ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "KAGGLE_API_ENVIRONMENT")


@pytest.fixture
def no_credentials(tmp_path, monkeypatch) -> Path:
    """An empty HOME and no KAGGLE_* variables: the client finds no credentials."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in KAGGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def fake_kaggle(no_credentials, monkeypatch):
    with FakeKaggle(lifetime=120) as fake:
        point_client_at(fake, monkeypatch)
        yield fake


def competition_zip(world: Path, names=("de_train.parquet", "id_map.csv", "sample_submission.csv")) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(world / name, name)
        archive.writestr("adata_obs_meta.csv", "obs_id,cell_type\n")  # the real archive holds more files
    return buffer.getvalue()


def test_download_lands_and_validates_the_files(fake_kaggle, small_world, tmp_path, capsys):
    fake_kaggle.state.competition_files[COMPETITION] = competition_zip(small_world)
    out = tmp_path / "data" / "kaggle"

    assert main(["data", "download", "--out", str(out), "--quiet"]) == 0

    assert sorted(p.name for p in out.iterdir()) == [MARKER, "adata_obs_meta.csv", "de_train.parquet", "id_map.csv", "sample_submission.csv"]
    assert (out / "de_train.parquet").read_bytes() == (small_world / "de_train.parquet").read_bytes()
    assert load_dataset(out).data_hash == load_dataset(small_world).data_hash
    printed = capsys.readouterr().out
    assert "de_train.parquet" in printed and "614 training rows x 300 genes, 255 test rows" in printed
    assert TOKEN not in printed
    assert [p.name for p in out.parent.iterdir()] == ["kaggle"]  # no staging left behind
    (download,) = fake_kaggle.calls("competitions.CompetitionApiService/DownloadDataFiles")
    assert download.json == {"competitionName": COMPETITION}
    assert download.headers["Authorization"] == f"Bearer {TOKEN}"
    assert fake_kaggle.calls("security.OAuthService/IntrospectToken")[0].json == {"token": TOKEN}


def test_download_of_invalid_files_lands_nothing(fake_kaggle, small_world, tmp_path, capsys):
    fake_kaggle.state.competition_files[COMPETITION] = competition_zip(small_world, names=("de_train.parquet",))
    out = tmp_path / "data" / "kaggle"

    assert main(["data", "download", "--out", str(out), "--quiet"]) == 2

    assert "id_map.csv: file not found" in capsys.readouterr().err
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_unknown_competition_is_a_clear_error(fake_kaggle, tmp_path, capsys):
    assert main(["data", "download", "--out", str(tmp_path / "kaggle"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"downloading the files of competition {COMPETITION!r}" in err and "404" in err
    assert TOKEN not in err


def test_a_rejected_token_names_its_source_not_its_value(fake_kaggle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "not-the-right-token-1234567")
    assert main(["data", "download", "--out", str(tmp_path / "kaggle")]) == 2
    captured = capsys.readouterr()
    assert "KAGGLE_API_TOKEN" in captured.err and "were not accepted" in captured.err
    assert "no Kaggle credentials found" not in captured.err  # they were found, and refused
    assert "not-the-right-token-1234567" not in captured.err + captured.out
    assert not (tmp_path / "kaggle").exists()


def test_without_credentials_the_guidance_names_every_source_and_nothing_is_written(no_credentials, tmp_path, capsys):
    out = tmp_path / "data" / "kaggle"
    assert credential_sources() == []

    assert main(["data", "download", "--out", str(out)]) == 2

    err = capsys.readouterr().err
    for needle in ("KAGGLE_API_TOKEN", "~/.kaggle/access_token", "~/.kaggle/kaggle.json", "DATA=<dir>", "sample_submission.csv"):
        assert needle in err
    assert not out.parent.exists()
    assert list(no_credentials.iterdir()) == []  # not even ~/.kaggle


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_data_without_credentials_fails_with_the_guidance(no_credentials, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env["HOME"] = str(no_credentials)
    out = tmp_path / "kaggle"
    # -o: treat the venv stamp as up to date, so make never tries to (re)install the venv here
    result = subprocess.run(
        ["make", "-o", ".venv/.installed", "data", f"KAGGLE_DATA={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "no Kaggle credentials found" in result.stderr and "KAGGLE_API_TOKEN" in result.stderr and "DATA=<dir>" in result.stderr
    assert not out.exists() and list(no_credentials.iterdir()) == []


def test_credential_sources_are_named_never_valued(no_credentials, monkeypatch):
    (no_credentials / ".kaggle").mkdir()
    (no_credentials / ".kaggle" / "access_token").write_text("secret-token-value-xyz-123\n")
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-value-abc-456")
    sources = credential_sources()
    assert sources == ["~/.kaggle/access_token", "KAGGLE_USERNAME/KAGGLE_KEY"]
    assert not any("secret" in s for s in sources)


def test_a_new_download_replaces_perturbkits_folder_but_not_a_users(fake_kaggle, small_world, tmp_path, capsys):
    fake_kaggle.state.competition_files[COMPETITION] = competition_zip(small_world)
    out = tmp_path / "kaggle"
    assert main(["data", "download", "--out", str(out), "--quiet"]) == 0
    (out / "stale.csv").write_text("from an older download\n")
    assert main(["data", "download", "--out", str(out), "--quiet"]) == 0
    assert not (out / "stale.csv").exists() and (out / "de_train.parquet").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes\n")
    capsys.readouterr()
    assert main(["data", "download", "--out", str(mine), "--quiet"]) == 2
    assert "perturbkit did not create" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert len(fake_kaggle.calls("competitions.CompetitionApiService/DownloadDataFiles")) == 2  # refused before downloading
    assert main(["data", "download", "--out", str(mine), "--quiet", "--force"]) == 0
    assert (mine / "de_train.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


def test_kernel_logs_prints_the_runs_log(fake_kaggle, capsys):
    fake_kaggle.state.kernels[f"{USERNAME}/perturbkit-submission"] = {"request": {}, "version": 1}
    fake_kaggle.state.log = '[{"stream_name": "stdout", "time": 1.0, "data": "line one\\n"}, {"stream_name": "stderr", "time": 2.0, "data": "line two\\n"}]'
    assert main(["kernel", "logs", f"{USERNAME}/perturbkit-submission"]) == 0
    assert capsys.readouterr().out == "line one\nline two\n"
    assert main(["kernel", "logs", f"{USERNAME}/no-such-kernel"]) == 2
    err = capsys.readouterr().err
    assert "getting the log of kernel" in err and TOKEN not in err
