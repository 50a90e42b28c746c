"""Imports every module that registers a listener, so each entry point runs with the same wiring.

Modules extend others through listeners instead of imports in the other direction:
``siyu.members.service.on_merge`` (move per-member rows to the survivor),
``siyu.members.rights.on_export`` / ``on_erase`` (PIPL), and ``siyu.events.service.on_ingest``
(react to a batch of newly accepted events); outbox handlers (``siyu.outbox.facade.handles``)
register the same way. A listener only runs if its module was imported, so
the API (:mod:`siyu.app`), the CLI and the tests import this module. A new module with
listeners adds one line here.
"""

from siyu.campaigns import facade as campaigns_facade  # noqa: F401
from siyu.campaigns import journey_enrolment  # noqa: F401
from siyu.channels import tasks as channels_tasks  # noqa: F401
from siyu.coupons import service as coupons_service  # noqa: F401
from siyu.events import facade as events_facade  # noqa: F401
from siyu.events import service as events_service  # noqa: F401
from siyu.lifecycle import facade as lifecycle_facade  # noqa: F401
from siyu.lifecycle import service as lifecycle_service  # noqa: F401
from siyu.loyalty import service as loyalty_service  # noqa: F401
from siyu.messaging import tasks as messaging_tasks  # noqa: F401
from siyu.models import tasks as models_tasks  # noqa: F401
from siyu.points import service as points_service  # noqa: F401
from siyu.reachability import facade as reachability_facade  # noqa: F401
from siyu.reachability import service as reachability_service  # noqa: F401
from siyu.segments import service as segments_service  # noqa: F401
from siyu.tiers import facade as tiers_facade  # noqa: F401
