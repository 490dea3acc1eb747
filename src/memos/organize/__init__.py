"""Memory evolution on write (the seed's mem_organize): keep memories true over time.

Each new fine memory is compared with the tenant's nearest existing ones; an
LLM decides to add it, merge it into one, let it supersede one (a changed
state), or drop it as a duplicate. ``plan`` turns the decisions into one
:class:`~memos.store.base.ChangeSet`; nothing is ever deleted, only archived
with a reason and a link to the memory that carries it on.
"""

from memos.organize.decide import Decision, Neighbour, OrganizeError, Organizer
from memos.organize.plan import plan_changes

__all__ = ["Decision", "Neighbour", "OrganizeError", "Organizer", "plan_changes"]
