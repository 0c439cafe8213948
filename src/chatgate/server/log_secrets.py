"""The secrets the gateway's log filter knows by value (chatgate.redact.RedactingFilter).

Errors are scrubbed where they enter the core, so a log line that formats one is clean
already; the filter is the second line, for a log call that formats anything else. Alone it
knows key shapes only; a gateway also gives it every credential its config holds: the master
key, each configured deployment's credentials, and the provider key variables that
zero-config mode reads.
"""

from __future__ import annotations

import os

from chatgate.providers.registry import PROVIDERS
from chatgate.redact import RedactingFilter, credentials, install_log_filter
from chatgate.server.state import GatewayState

__all__ = ["gateway_secrets", "install_gateway_log_filter"]


def gateway_secrets(state: GatewayState) -> list[str]:
    found = [state.master_key or ""]
    for group in state.models.router.groups.values():
        for routed in group:
            found += credentials(routed.deployment)
    found += [os.environ.get(spec.key_env, "") for spec in PROVIDERS.values() if spec.key_env]
    return [s for s in found if s]


def install_gateway_log_filter(state: GatewayState) -> RedactingFilter:
    """Called at start and after each reload: the filter knows the config in force."""
    return install_log_filter(gateway_secrets(state))
