"""How a handoff package travels to the receiving agent: in the call when small, by reference when not.

Ray inlines a call's arguments up to 100 KiB (``max_direct_call_object_size``) and puts anything
larger in the object store. A package put there by hand costs the receiver a second round trip to
read it back, about 0.3 ms that a few-kilobyte package does not need. A large package read by
reference costs about twice as much at 10 MB as at 100 KB (by value: over three times), and it is
put once however many times a failing receiver is retried. So a package rides in the call below
Ray's own limit and goes by reference above it. The size is the package's JSON (the handoff
record's ``package_bytes``); Ray measures the pickled package, a few hundred bytes larger, so the
switch comes 4 KiB before Ray's limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import ray

from marketing_agents.actors.handoff import package_bytes
from marketing_agents.domain import HandoffPackage

INLINE_LIMIT_BYTES = 100 * 1024 - 4 * 1024


@dataclass(frozen=True)
class PackageTransfer:
    """A package in transit: the package itself, or its ObjectRef, which Ray passes through unread."""

    handoff_id: UUID
    package: HandoffPackage | None = None
    ref: ray.ObjectRef | None = None

    @classmethod
    def of(cls, package: HandoffPackage, size_bytes: int | None = None) -> PackageTransfer:
        size = package_bytes(package) if size_bytes is None else size_bytes
        if size < INLINE_LIMIT_BYTES:
            return cls(package.handoff_id, package=package)
        return cls(package.handoff_id, ref=ray.put(package))

    @property
    def by_reference(self) -> bool:
        return self.ref is not None

    async def open(self) -> HandoffPackage:
        if self.ref is not None:
            return await self.ref
        if self.package is None:  # of() sets one of the two
            raise ValueError(f"the transfer of handoff {self.handoff_id} holds neither a package nor a reference")
        return self.package
