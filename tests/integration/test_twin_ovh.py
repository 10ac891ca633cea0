"""The ovh twin under real Terraform: it drives the sandbox's OVH API emulator, so an OVH → OVH move runs for real.

One apply (a Business service in another project and region, an application user, the ``default`` user) is
shared by the module; the rules run on small configurations of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import valkey

from reproducer.offline import offline_provider
from reproducer.procs import pid_alive
from reproducer.run.terraform import Terraform, TerraformError
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import ovh_client
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


def main(project: str) -> str:
    """A Business service in ``project`` (region SBG), a user with ``channels = []``, and the default user."""
    return (
        HEADER
        + f"""
resource "ovh_cloud_project_database" "db" {{
  service_name     = "{project}"
  description      = "moved"
  engine           = "valkey"
  version          = "8.0"
  plan             = "business"
  flavor           = "db1-7"
  maintenance_time = "04:00:00"
  advanced_configuration = {{
    "redis_notify_keyspace_events" = "Ex"
  }}

  nodes {{
    region = "SBG"
  }}

  nodes {{
    region = "SBG"
  }}

  ip_restrictions {{
    ip          = "127.0.0.1/32"
    description = "copy host"
  }}
}}

resource "ovh_cloud_project_database_valkey_user" "app" {{
  service_name = "{project}"
  cluster_id   = ovh_cloud_project_database.db.id
  name         = "app"
  categories   = ["+@all"]
  commands     = []
  keys         = ["app:*"]
  channels     = []
}}

resource "ovh_cloud_project_database_valkey_user" "default" {{
  service_name = "{project}"
  cluster_id   = ovh_cloud_project_database.db.id
  name         = "default"
  categories   = ["+@all"]
  keys         = ["*"]
  channels     = ["*"]
}}

output "db" {{
  value = ovh_cloud_project_database.db
}}

output "passwords" {{
  sensitive = true
  value = {{
    app     = ovh_cloud_project_database_valkey_user.app.password
    default = ovh_cloud_project_database_valkey_user.default.password
  }}
}}
"""
    )


def terraform(tmp: Path, text: str, api_server: OvhApiServer, credentials: dict[str, str]) -> Terraform:
    """An initialised working directory with ``text`` against the ovh twin, pointed at the emulator."""
    workdir = tmp / "work"
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text(text)
    env = {f"OVH_{k.upper()}": v for k, v in credentials.items()} | {"OVH_ENDPOINT": api_server.url}
    tf = Terraform(workdir, cli_config=install_twins(tmp / "twins", ["ovh"]), env=env, timeout=120)
    tf.init()
    return tf


@pytest.fixture(scope="module")
def target(api_server):
    """Credentials and an empty project of the emulator (the move's target); its services are deleted after."""
    credentials = api_server.store.add_credentials()
    project = api_server.store.add_project("twin target")
    yield credentials, project
    record = api_server.store.project(project)
    for service_id in list(record["services"] if record else ()):
        api_server.store.delete_service(project, service_id)


@pytest.fixture(scope="module")
def applied(tmp_path_factory, api_server, target):
    credentials, project = target
    tf = terraform(tmp_path_factory.mktemp("ovh-twin"), main(project), api_server, credentials)
    tf.apply(tf.plan())
    yield tf, project, {k: v.value for k, v in tf.output().items()}
    tf.destroy()


def fleet_of(api_server: OvhApiServer, project: str, service_id: str):
    """The emulator's fleet behind a service."""
    return api_server.store.fleet(service_id, api_server.store.find_service(project, service_id))


def connect(api_server, project, db, username, password) -> valkey.Valkey:
    """A client of the service's endpoint, verifying TLS with the CA of the emulator's fleet."""
    (endpoint,) = db["endpoints"]
    fleet = fleet_of(api_server, project, db["id"])
    return valkey.Valkey(
        host=endpoint["domain"],
        port=endpoint["port"],
        username=username,
        password=password,
        ssl=endpoint["ssl"],
        ssl_ca_certs=str(fleet.tls_files.ca_cert),
        ssl_cert_reqs="required",
        socket_timeout=5,
    )


def test_apply_creates_the_service_through_the_api_in_the_target_project_and_region(applied, api_server, target):
    _tf, project, outputs = applied
    db = outputs["db"]
    client = ovh_client(api_server, target[0])
    service = client.get(f"/cloud/project/{project}/database/valkey/{db['id']}")
    assert client.get(f"/cloud/project/{project}/database/valkey") == [db["id"]]
    assert (service["status"], service["plan"], service["nodeNumber"], service["nodes"][0]["region"]) == (
        "READY",
        "business",
        2,
        "SBG",
    )
    assert db["endpoints"] == [
        {
            "component": "valkey",
            "domain": "127.0.0.1",
            "path": None,
            "port": service["endpoints"][0]["port"],
            "scheme": "rediss",
            "ssl": True,
            "ssl_mode": "required",
            "uri": service["endpoints"][0]["uri"],
        }
    ]
    assert [(r["ip"], r["status"]) for r in db["ip_restrictions"]] == [("127.0.0.1/32", "READY")]
    advanced = client.get(f"/cloud/project/{project}/database/valkey/{db['id']}/advancedConfiguration")
    assert advanced == {"redis_notify_keyspace_events": "Ex"} == db["advanced_configuration"]
    fleet = fleet_of(api_server, project, db["id"])
    assert fleet.admin(fleet.primary, "CONFIG", "GET", "notify-keyspace-events")[1] in ("Ex", "xE")


def test_users_get_the_api_passwords_and_empty_channels_become_all_channels(applied, api_server):
    _tf, project, outputs = applied
    db, passwords = outputs["db"], outputs["passwords"]
    with connect(api_server, project, db, "app", passwords["app"]) as conn:
        assert conn.set("app:k", "v")
        with pytest.raises(valkey.exceptions.NoPermissionError):
            conn.set("other:k", "v")
        assert conn.publish("any-channel", "x") == 0  # the provider dropped channels = [], the API stored ["*"]
    with connect(api_server, project, db, "default", passwords["default"]) as conn:
        assert conn.get("app:k") == b"v"


def test_second_plan_changes_nothing(applied):
    tf, _project, _outputs = applied
    assert not tf.plan(out="again").has_changes


def test_destroy_deletes_the_service_and_its_valkey(applied, api_server, target):
    tf, project, outputs = applied
    pids = [n.pid for n in fleet_of(api_server, project, outputs["db"]["id"]).nodes]
    tf.destroy()
    assert ovh_client(api_server, target[0]).get(f"/cloud/project/{project}/database/valkey") == []
    assert not any(map(pid_alive, pids))


@pytest.fixture(scope="module")
def rules(tmp_path_factory, api_server, target):
    """A working directory for the rule cases, on the target project."""
    credentials, project = target
    yield terraform(tmp_path_factory.mktemp("ovh-rules"), HEADER, api_server, credentials), project


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


def test_api_errors_become_terraform_errors_with_their_text(rules, api_server):
    tf, project = rules
    text = database("region", project, regions=("GRA9",)) + database("nodes", project, plan="business")
    errors = sorted(refused(tf, text, apply=True))
    base = f"calling Post /cloud/project/{project}/database/valkey:\n\t HTTP Error"
    assert errors == [
        f'{base} 400: Client::BadRequest::NotEnoughNodes: "Plan business has 2 node(s)" answered by the OVH API, '
        "see docs/twins_clouds.md#ovh",
        f'{base} 404: Client::NotFound::RegionNotFound: "Region GRA9 does not exist" answered by the OVH API, '
        "see docs/twins_clouds.md#ovh",
    ]
    assert api_server.store.project(project)["services"] == {}
