"""Imports every table so that ``Base.metadata`` is complete (migrations, schema checks).

Each new module with a ``models.py`` adds one import line here.
"""

from siyu.campaigns import journey_models  # noqa: F401
from siyu.campaigns import models as campaigns_models  # noqa: F401
from siyu.channels import models as channels_models  # noqa: F401
from siyu.coupons import models as coupons_models  # noqa: F401
from siyu.db import Base
from siyu.decisions import models as decisions_models  # noqa: F401
from siyu.events import models as events_models  # noqa: F401
from siyu.imports import models as imports_models  # noqa: F401
from siyu.kit import idempotency  # noqa: F401
from siyu.lifecycle import models as lifecycle_models  # noqa: F401
from siyu.members import models as members_models  # noqa: F401
from siyu.messaging import models as messaging_models  # noqa: F401
from siyu.models import models as models_models  # noqa: F401
from siyu.outbox import models as outbox_models  # noqa: F401
from siyu.points import models as points_models  # noqa: F401
from siyu.reachability import models as reachability_models  # noqa: F401
from siyu.segments import models as segments_models  # noqa: F401
from siyu.tenancy import models as tenancy_models  # noqa: F401
from siyu.tiers import models as tiers_models  # noqa: F401

metadata = Base.metadata
