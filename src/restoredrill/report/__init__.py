"""Audit-grade reports rendered from the evidence records: the HTML drill report, the manifest and its
Ed25519 signature, the offline Allure report and the CI job summary. Data first: nothing is measured here."""

from restoredrill.report.build import Built, build_report
from restoredrill.report.integrity import verify_folder

__all__ = ["Built", "build_report", "verify_folder"]
