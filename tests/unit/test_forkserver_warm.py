"""The fork server's warm-up: Prefect's API clients share one verifying TLS context per CA file
(built before the fork), an insecure context is still made fresh (Prefect alters it), and every
email template is compiled into the shared environment. In a subprocess: the patch is global."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import ssl, certifi
import prefect.client.orchestration as orchestration
from rprp.forkserver import share_tls_contexts
share_tls_contexts()
share_tls_contexts()  # a second call changes nothing
made = orchestration.ssl.create_default_context
one, two = made(cafile=certifi.where()), made(cafile=certifi.where())
insecure_a, insecure_b = made(), made()
print(one is two, insecure_a is not insecure_b, insecure_a is not one,
      ssl.create_default_context(cafile=certifi.where()) is not one,
      orchestration.ssl.SSLContext is ssl.SSLContext)
from tasks.outbox import compile_templates, email_environment
count = compile_templates()
cached = len(email_environment().cache or {})
print(count, count == cached)
"""


def test_tls_contexts_are_shared_only_where_safe_and_templates_are_compiled() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "True True True True True", out
    count, all_cached = out[1].split()
    assert int(count) >= 40 and all_cached == "True", out
