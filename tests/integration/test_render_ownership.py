"""`render --out DIR` owns only the files its manifest lists: it never deletes or overwrites anything else.

Adversarial cases: a git repository given as --out, user files beside rendered ones (backend.tf, overrides,
notes), a manifest from a pull request naming paths outside the directory, a file system that refuses the
write midway, `--out .` and `--out FILE`.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from reproducer import cli
from reproducer.gitops.manifest import MANIFEST
from reproducer.pipeline import render as pipeline_render
from tests.golden.regen import HERE
from tests.support.cli import run as reproducer

SPEC = HERE / "specs" / "business.yaml"
RENDER_HINT = "choose an empty directory or one reproducer rendered"


def render(out: str | Path, target: str = "aws", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return reproducer("render", "--target", target, "--spec", str(SPEC), "--out", str(out), cwd=cwd)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def git_repository(path: Path) -> dict[str, bytes]:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('mine')\n")
    (path / "NOTES.md").write_text("my notes\n")
    return snapshot(path)


def test_rendering_into_a_git_repository_is_refused_and_touches_nothing(tmp_path):
    repo = tmp_path / "repo"
    before = git_repository(repo)
    result = render(repo)
    assert result.returncode == 2, result.stderr
    assert "holds no manifest" in result.stderr and RENDER_HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(repo) == before and (repo / ".git" / "HEAD").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"], "no staging directory left beside it"


def test_a_re_render_keeps_user_files_and_removes_only_its_own_stale_files(tmp_path):
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    owned = json.loads((out / MANIFEST).read_text())["files"]
    assert set(owned) == {p for p in snapshot(out) if p != MANIFEST}
    user_files = {
        "terraform/backend.tf": 'terraform {\n  backend "s3" {}\n}\n',
        "terraform/cache_override.tf": "# mine\n",
        "NOTES.md": "notes\n",
        "terraform/terraform.tfvars": 'region = "eu-west-3"\n',
    }
    for relative, text in user_files.items():
        (out / relative).write_text(text)
    (out / "compatibility.json").unlink()  # a rendered file the user removed comes back
    (out / "terraform" / "extra.tf").write_text("# an earlier render wrote this\n")
    manifest = json.loads((out / MANIFEST).read_text())
    from reproducer.gitops.manifest import digest

    manifest["files"]["terraform/extra.tf"] = digest(b"# an earlier render wrote this\n")
    (out / MANIFEST).write_text(json.dumps(manifest))

    again = render(out, "gcp")
    assert again.returncode == 0, again.stderr
    files = snapshot(out)
    assert {k: files[k].decode() for k in user_files} == user_files
    assert "terraform/extra.tf" not in files, "a file it wrote and no longer renders is removed"
    assert "google_" in files["terraform/main.tf"].decode(), "the rendered files are replaced"
    assert "compatibility.json" in files
    assert set(json.loads(files[MANIFEST])["files"]) == {p for p in files if p != MANIFEST and p not in user_files}


def test_a_file_not_written_by_reproducer_where_it_renders_one_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    assert render(out).returncode == 0
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["files"]["terraform/main.tf"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "terraform" / "main.tf").write_text("# the user's own main.tf\n")
    result = render(out)
    assert result.returncode == 2 and "was not written by reproducer" in result.stderr, result.stderr
    assert (out / "terraform" / "main.tf").read_text() == "# the user's own main.tf\n"


@pytest.mark.parametrize("entry", ["../victim.txt", "/etc/hostname", "terraform/../../victim.txt"])
def test_a_manifest_naming_paths_outside_the_directory_is_refused(tmp_path, entry):
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    assert render(out).returncode == 0
    victim.write_text("keep me\n")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"][entry] = "sha256:" + "0" * 64
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = snapshot(out)
    result = render(out, "gcp")
    assert result.returncode == 2 and "outside its directory" in result.stderr, result.stderr
    assert victim.read_text() == "keep me\n" and snapshot(out) == before


def test_a_link_inside_the_output_is_not_written_through(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert render(out).returncode == 0
    elsewhere.mkdir()
    (out / "terraform").rename(tmp_path / "moved")
    (out / "terraform").symlink_to(elsewhere)
    result = render(out)
    assert result.returncode == 2 and "is a link" in result.stderr, result.stderr
    assert list(elsewhere.iterdir()) == []


def test_out_dot_renders_into_the_current_directory_and_out_file_is_refused(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    first = render(".", cwd=here)
    assert first.returncode == 0, first.stderr
    assert (here / "terraform" / "main.tf").is_file() and (here / MANIFEST).is_file()
    assert render(".", cwd=here).returncode == 0, "a re-render of its own directory"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "NOTES.md").write_text("notes\n")
    refused = render(".", cwd=mine)
    assert refused.returncode == 2 and RENDER_HINT in refused.stderr and "Traceback" not in refused.stderr
    assert snapshot(mine) == {"NOTES.md": b"notes\n"}
    (tmp_path / "afile").write_text("x\n")
    to_file = render(tmp_path / "afile")
    assert to_file.returncode == 2 and "Traceback" not in to_file.stderr, to_file.stderr
    assert (tmp_path / "afile").read_text() == "x\n"


@pytest.mark.fault("file system refuses a write midway through a re-render (EROFS, ENOSPC)", ends="no_output")
@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_write_refused_midway_leaves_the_old_files_intact(tmp_path, monkeypatch, capsys, code):
    out = tmp_path / "out"
    pipeline_render.render(pipeline_render.RenderRequest(spec=SPEC, target="aws", out=out))
    before = snapshot(out)
    real_mkstemp, calls = tempfile.mkstemp, []

    def refusing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(code, os.strerror(code))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["render", "--target", "gcp", "--spec", str(SPEC), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "error: cannot write" in err and os.strerror(code) in err, err
    assert "hint:" in err and "Traceback" not in err
    assert snapshot(out) == before, "every old file (and the manifest) is intact, no temporary file is left"


def test_plan_ignores_the_manifest_and_the_users_files(tmp_path):
    out = tmp_path / "out"
    assert render(out).returncode == 0
    (out / "terraform" / "backend.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    (out / "NOTES.md").write_text("notes\n")
    plan = reproducer(
        "plan", "--target", "aws", "--spec", str(SPEC), "--out", str(out), "--terraform", "none",
        "--detailed-exitcode", "--format", "json",
    )  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["files"] == []


@pytest.mark.parametrize(
    ("link", "points_to", "entries"),
    [
        ("old", "../victim", {"old/a.txt": "a.txt"}),
        ("ansible", "../victim", {"ansible/a.txt": "a.txt", "ansible/sub/b.tf": "sub/b.tf"}),
        ("terraform", "../victim/sub", {"terraform/b.tf": "sub/b.tf"}),
        ("a.txt", "../victim/a.txt", {"a.txt": "a.txt"}),
    ],
)
def test_a_manifest_entry_reached_through_a_committed_link_is_refused_before_anything_changes(
    tmp_path, link, points_to, entries
):
    """A pull request commits `out/old -> ../victim` and a manifest claiming `old/a.txt` with the victim's digest."""
    from reproducer.gitops.manifest import digest

    victim, out = tmp_path / "victim", tmp_path / "out"
    (victim / "sub").mkdir(parents=True)
    (victim / "a.txt").write_text("precious a\n")
    (victim / "sub" / "b.tf").write_text("precious b\n")
    before_victim = snapshot(victim)
    out.mkdir()
    (out / link).symlink_to(points_to)
    files = {entry: digest(before_victim[target]) for entry, target in entries.items()}
    manifest = json.dumps({"format_version": 1, "files": files})
    (out / MANIFEST).write_text(manifest)
    for target in ("aws", "local"):
        result = render(out, target)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "hint:" in result.stderr
        assert any(entry in result.stderr for entry in entries), result.stderr
        assert snapshot(victim) == before_victim, "nothing behind the link is removed or overwritten"
        assert sorted(p.name for p in out.iterdir()) == sorted([link, MANIFEST]), "nothing is written"
        assert (out / MANIFEST).read_text() == manifest
