"""A local Cognito sandbox with user import jobs, built on moto's server.

Needs the optional dependencies: ``pip install 'csvimport[sandbox]'``.
"""

from .server import PoolInfo, Sandbox, load_pool_spec
from .settings import Faults, SandboxSettings

__all__ = ["Faults", "PoolInfo", "Sandbox", "SandboxSettings", "load_pool_spec"]
