"""dlt sources, one self-contained folder per source.

dlt reads these settings once, at import: telemetry off (the machine is offline and a
tenant's run must not phone home), warnings only when they matter, and completed load
packages deleted locally so the working folder does not keep a second copy of every snapshot.
"""

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
