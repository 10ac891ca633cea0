#!/usr/bin/python
# Part of reproducer's roles: writes several rendered files in one module run.
"""Write rendered files (content, mode, owner, group) idempotently, all in one module run.

A ``template`` task runs two modules per file (a stat, then copy or file), each a Python start with its payload;
a host with six instances wrote 36 files that way. The roles render the contents on the controller
(``lookup('template')``) and hand them here. Each file is replaced atomically (a temporary file in the same
directory, then a rename, which never follows a symbolic link at the destination); an existing file is left as it
is when ``force`` is false. Check mode changes nothing and reports what would change; ``--diff`` shows it.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: valkey_files
short_description: Write several rendered files in one module run
description:
  - Each file gets its content, mode, owner and group; an unchanged file is not rewritten.
  - Files are replaced atomically; with O(force=false) an existing file is left as it is.
options:
  files:
    description: The files, each with C(path), C(content), C(mode) and optional C(owner), C(group), C(force).
    type: list
    elements: dict
    required: true
author: reproducer
"""

RETURN = r"""
changed_paths:
  description: The paths whose content or attributes changed (or would change, in check mode), in order.
  type: list
  elements: str
  returned: always
"""

FILE_KEYS = {"path", "content", "mode", "owner", "group", "force"}


def read_bytes(path):
    """The content of the regular file at ``path``, or None when it is absent or not a regular file."""
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def write_atomically(module, path, data, mode):
    """Write ``data`` to a new file beside ``path`` (mode ``mode``), then rename it over ``path``."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".valkey_files-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as error:
        if os.path.exists(temp):
            os.unlink(temp)
        module.fail_json(msg=f"cannot write {path}: {error}")


def check_entry(module, spec):
    """Fail the task unless ``spec`` is a well-formed entry (all are checked before any file is written)."""
    unknown, path = set(spec) - FILE_KEYS, spec.get("path")
    if unknown or not isinstance(spec.get("path"), str) or not isinstance(spec.get("content"), str):
        module.fail_json(
            msg=f"each file needs a path and a content (strings), and no other key than {sorted(FILE_KEYS)}"
        )
    if not os.path.isabs(path):
        module.fail_json(msg=f"{path}: the path must be absolute")
    if not isinstance(spec.get("force", True), bool):
        module.fail_json(msg=f"{path}: force must be true or false")
    if file_mode(spec) is None:
        module.fail_json(msg=f"{path}: the mode must be octal digits such as 0640")


def file_mode(spec):
    """The entry's mode as a number (a string of octal digits, or a number as YAML read one), or None."""
    mode = spec.get("mode", "0644")
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o7777:
        return mode
    if isinstance(mode, str) and re.fullmatch(r"0?[0-7]{3,4}", mode):
        return int(mode, 8)
    return None


def apply_file(module, spec, diffs):
    """Bring one file to its content and attributes; return whether anything changed (or would)."""
    path, mode = spec["path"], file_mode(spec)
    if os.path.lexists(path) and not spec.get("force", True):
        return False
    wanted = spec["content"].encode("utf-8")
    before = read_bytes(path)
    changed = before != wanted
    if changed:
        if module._diff:
            diffs.append(
                {
                    "before_header": path,
                    "after_header": path,
                    "before": (before or b"").decode("utf-8", "replace"),
                    "after": spec["content"],
                }
            )
        if not module.check_mode:
            write_atomically(module, path, wanted, mode)
    if not module.check_mode or os.path.exists(path):
        changed = module.set_mode_if_different(path, mode, changed) or changed
        if spec.get("owner"):
            changed = module.set_owner_if_different(path, spec["owner"], changed) or changed
        if spec.get("group"):
            changed = module.set_group_if_different(path, spec["group"], changed) or changed
    return changed


def main():
    """Write every file of ``files``; report the paths that changed."""
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True}},
        supports_check_mode=True,
    )
    diffs, changed_paths = [], []
    for spec in module.params["files"]:
        check_entry(module, spec)
    for spec in module.params["files"]:
        if apply_file(module, spec, diffs):
            changed_paths.append(spec["path"])
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, diff=diffs)


if __name__ == "__main__":
    main()
