"""Pure parts of the Ansible runner: command line, failures and progress from job events."""

from reproducer.run.ansible import TaskFailure, changed_tasks, cmdline, diff_text, failures_from_events, progress_line


def test_cmdline_puts_no_secret_and_asks_for_the_vault_password(tmp_path):
    secrets_file = tmp_path / "secrets.vault.yml"
    assert cmdline(check=True, diff=True, secrets_file=None) == "--check --diff"
    assert (
        cmdline(check=False, diff=False, secrets_file=secrets_file) == f"--ask-vault-pass --extra-vars @{secrets_file}"
    )


def test_failures_name_host_task_and_message_and_skip_ignored_ones():
    events = [
        {"event": "runner_on_ok", "event_data": {"host": "a", "task": "t1", "res": {"changed": True}}},
        {"event": "runner_on_failed", "event_data": {"host": "b", "task": "t2", "res": {"msg": "boom"}}},
        {"event": "runner_on_failed", "event_data": {"host": "c", "task": "t3", "ignore_errors": True, "res": {}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "d", "task": "t4", "res": {"msg": "no route"}}},
    ]
    assert failures_from_events(events) == [TaskFailure("b", "t2", "boom"), TaskFailure("d", "t4", "no route")]


def test_progress_lines():
    assert progress_line({"event": "playbook_on_task_start", "event_data": {"task": "install"}}) == "task: install"
    changed = {"event": "runner_on_ok", "event_data": {"host": "h", "task": "t", "res": {"changed": True}}}
    assert progress_line(changed) == "  changed: h — t"
    assert progress_line({"event": "verbose", "event_data": {}}) is None


def test_changed_tasks_and_their_diffs_from_a_check_run():
    conf = {"before": "maxmemory 1gb\n", "after": "maxmemory 2gb\n", "before_header": "/etc/valkey/valkey.conf"}
    events = [
        {
            "event": "runner_on_ok",
            "event_data": {"host": "h1", "task": "conf", "res": {"changed": True, "diff": [conf]}},
        },
        {"event": "runner_on_ok", "event_data": {"host": "h2", "task": "conf", "res": {"changed": False}}},
        {
            "event": "runner_on_ok",
            "event_data": {
                "host": "h3",
                "task": "dirs",
                "res": {"changed": True, "results": [{"diff": {"prepared": "+ dir"}}]},
            },
        },
    ]
    assert changed_tasks(events) == ["h1: conf", "h3: dirs"]
    text = diff_text(events)
    assert "-maxmemory 1gb\n+maxmemory 2gb\n" in text and "/etc/valkey/valkey.conf" in text
    assert "# h3: dirs\n+ dir\n" in text
    assert diff_text([{"event": "runner_on_ok", "event_data": {"res": {"changed": True}}}]) == ""


def test_secrets_of_the_calling_process_do_not_reach_ansible():
    from reproducer.run.ansible import without_secrets

    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SSH_AUTH_SOCK": "/run/agent",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
        "REPRODUCER_PASSWORD_DEFAULT": "s1",
        "OVH_APPLICATION_SECRET": "s2",
        "OVH_CONSUMER_KEY": "s3",
        "AWS_SECRET_ACCESS_KEY": "s4",
        "OS_PASSWORD": "s5",
        "GITHUB_TOKEN": "s6",
        "REDISCLI_AUTH": "s7",
    }
    assert without_secrets(env) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SSH_AUTH_SOCK": "/run/agent",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
    }
