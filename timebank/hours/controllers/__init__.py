"""HTTP routes of the hours domain: categories, trainings, activities, attendance, records."""

from __future__ import annotations

from timebank.hours.controllers.activities import (
    ActivityController,
    CategoryController,
    MyHoursController,
    TrainingController,
)
from timebank.hours.controllers.records import (
    CertificateController,
    HonourController,
    ServiceRecordController,
)

CONTROLLERS = [
    CategoryController,
    TrainingController,
    ActivityController,
    ServiceRecordController,
    HonourController,
    CertificateController,
    MyHoursController,
]
