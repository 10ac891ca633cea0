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
