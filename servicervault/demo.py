"""The demo tenant: a generated portfolio placed in tenant ``demo``'s inbound prefix.

Generation is deterministic, so running the demo twice delivers identical files, which
extract recognises as already landed: ``make demo`` is safe to repeat. A different
portfolio size would re-deliver the same months with other loans, so that needs ``reset``.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from servicervault.config import Tenant, load_tenant, vault_home
from servicervault.errors import VaultError
from servicervault.generator import generate_tapes
from servicervault.storage import Bucket, LocalBucket

DEMO_TENANT = "demo"


def prepare_demo(
    loans: int, months: int, reset: bool, progress: Callable[[int, int], None] | None = None
) -> tuple[Tenant, list[str]]:
    """Generate the demo portfolio into the demo tenant's inbound; return the new keys."""
    tenant = load_tenant(DEMO_TENANT)
    bucket = Bucket.for_tenant(tenant)
    if not isinstance(bucket, LocalBucket) or not bucket.root.is_relative_to(vault_home()):
        raise VaultError(f"the demo tenant's bucket {bucket.url} must live under VAULT_HOME")
    if reset:
        shutil.rmtree(bucket.root, ignore_errors=True)
        shutil.rmtree(tenant.home, ignore_errors=True)
    prefix = tenant.sources[0].inbound
    inbound = bucket.local_path(prefix)
    added = []
    with tempfile.TemporaryDirectory(prefix="vault-demo-") as tmp:
        for path in generate_tapes(loans, months, Path(tmp), progress=progress):
            target = inbound / path.name
            if target.exists():
                if not filecmp.cmp(path, target, shallow=False):
                    raise VaultError(
                        f"{target} already holds a different demo portfolio; "
                        "run `vault demo --reset` to start the demo tenant over"
                    )
                continue
            bucket.put_file(path, f"{prefix}{path.name}")
            added.append(f"{prefix}{path.name}")
    return tenant, added
