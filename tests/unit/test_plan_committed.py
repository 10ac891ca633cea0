"""What `plan` accepts from a committed output before applying it offline (it arrives in pull requests)."""

from __future__ import annotations

from reproducer.pipeline.plan import _code_in, _forbidden_text, _terraform_file


def test_module_blocks_and_remote_states_are_found_before_init():
    files = {
        "terraform/main.tf": 'module x {\n  source = "git::https://example.invalid/x"\n}\n',
        "terraform/b.tf": 'data "terraform_remote_state" "s" {\n  backend = "http"\n}\n',
        "terraform/c.tf": 'module"y"{\n}\n',
    }
    assert _forbidden_text(files) == [
        "a terraform_remote_state data source in terraform/b.tf",
        "a module block in terraform/c.tf",
        "a module block in terraform/main.tf",
    ]


def test_the_same_words_inside_strings_are_not_blocks():
    hostile = 'resource "aws_security_group" "g" {\n  description = "module x { terraform_remote_state }"\n}\n'
    assert _forbidden_text({"terraform/main.tf": hostile}) == []


def test_provisioners_and_module_calls_are_found_in_the_planned_configuration():
    configuration = {
        "root_module": {
            "resources": [
                {"address": "terraform_data.x", "provisioners": [{"type": "local-exec"}]},
                {"address": "aws_vpc.v", "expressions": {}},
            ],
            "module_calls": {"m": {"source": "./m"}},
        }
    }
    assert _code_in(configuration) == ["a provisioner in terraform_data.x", "module m"]
    assert _code_in({}) == []


def test_only_root_module_tf_files_and_the_example_values_are_copied():
    assert _terraform_file("terraform/main.tf") and _terraform_file("terraform/terraform.tfvars.example")
    for other in ("terraform/outputs.tf", "terraform/terraform.tfvars", "terraform/x.tf.json", "terraform/m/main.tf"):
        assert not _terraform_file(other), other


def test_functions_that_read_local_files_are_found_before_init():
    """Applied offline, `file("/root/.ssh/id_rsa")` would put the file in an attribute the PR comment shows."""
    files = {
        "terraform/a.tf": 'resource "aws_vpc" "v" {\n  tags = { k = file("/etc/hostname") }\n}\n',
        "terraform/b.tf": 'resource "aws_vpc" "v" {\n  tags = { k = "${templatefile("/etc/passwd", {})}" }\n}\n',
        "terraform/c.tf": 'locals {\n  k = filebase64 ("/etc/shadow")\n}\n',
    }
    assert _forbidden_text(files) == [
        "a function reading local files in terraform/a.tf",
        "a function reading local files in terraform/b.tf",
        "a function reading local files in terraform/c.tf",
    ]


def test_the_same_function_names_as_rendered_text_are_not_calls():
    rendered = (
        '# comment: file("x")\n'
        'resource "aws_security_group" "g" {\n'
        '  description = "file(\\"/etc/passwd\\") and $${file(\\"/etc/passwd\\")}"\n'
        "}\n"
    )
    assert _forbidden_text({"terraform/main.tf": rendered}) == []


# -- state backends (issue 14): what plan and render read of the backends a directory declares -------------------


def test_declared_backends_are_found_in_hcl_and_json_but_not_in_comments():
    from reproducer.pipeline.backend import declared_backends

    assert declared_backends('terraform {\n  backend "http" {}\n}\n', "b.tf") == ["http"]
    assert declared_backends('terraform {\n  cloud {\n    organization = "o"\n  }\n}\n', "c.tf") == ["cloud"]
    assert declared_backends('{"terraform": {"backend": {"s3": {}}}}', "d.tf.json") == ["backend"]
    commented = '# backend "s3" {\n// backend "gcs" {\n/*\n  backend "pg" {\n*/\nresource "x" "y" {}\n'
    assert declared_backends(commented, "e.tf") == []


def test_state_mode_needs_exactly_one_backend(tmp_path):
    import pytest

    from reproducer.errors import InputError
    from reproducer.pipeline.plan import _backend_kind

    assert _backend_kind({"terraform/reproducer_backend.tf": 'terraform {\n  backend "pg" {}\n}\n'}, tmp_path) == "pg"
    with pytest.raises(InputError, match="declares none") as none:
        _backend_kind({"terraform/main.tf": 'resource "a" "b" {}\n'}, tmp_path)
    assert "--backend" in none.value.hint
    two = {"terraform/backend.tf": 'terraform {\n  backend "s3" {}\n}\n',
           "terraform/reproducer_backend.tf": 'terraform {\n  backend "pg" {}\n}\n'}  # fmt: skip
    with pytest.raises(InputError, match="2 backends"):
        _backend_kind(two, tmp_path)


def test_backend_config_paths_are_files_that_terraform_cannot_read_as_settings(tmp_path):
    import pytest

    from reproducer.errors import InputError
    from reproducer.pipeline.plan import _checked_backend_configs

    good = tmp_path / "backend.http.hcl"
    good.write_text('address = "https://state.example"\n')
    assert _checked_backend_configs((good,), "state") == (good.resolve(),)
    for name in ("a=b.hcl", "line\nbreak.hcl"):
        odd = tmp_path / name
        odd.write_text("")
        with pytest.raises(InputError, match="'='"):
            _checked_backend_configs((odd,), "state")
    with pytest.raises(InputError, match="not a file"):
        _checked_backend_configs((tmp_path,), "state")
    with pytest.raises(InputError, match="--terraform state"):
        _checked_backend_configs((good,), "offline")


def test_user_named_files_match_in_any_directory():
    from reproducer.pipeline.files import user_named

    for name in ("terraform/backend.tf", "x_override.tf", "terraform/override.tf.json", "t/a.auto.tfvars",
                 "terraform/.terraform.lock.hcl", "terraform/terraform.tfvars", "terraform/backend.s3.hcl",
                 "terraform/prod.tfbackend"):  # fmt: skip
        assert user_named(name), name
    for name in ("terraform/main.tf", "terraform/reproducer_backend.tf", "terraform/backend.s3.hcl.example",
                 "terraform/terraform.tfvars.example", "ansible/site.yml"):  # fmt: skip
        assert not user_named(name), name
