"""Which evidence in the report supports which audit control. Wording follows the published criteria;
the status says what this run's evidence shows, never more.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    framework: str
    ref: str
    requirement: str
    evidence: str
    sections: tuple[tuple[str, str], ...]
    regular: bool = False  # the control asks for testing at an interval: show how often it was done


CONTROLS = (
    Control(
        "SOC 2 (Trust Services Criteria)",
        "A1.3",
        "Recovery plan procedures supporting system recovery are tested to help meet the entity's "
        "availability commitments and system requirements.",
        "The newest backup of each database and layer was restored into a throwaway server and checked; "
        "the time to recover and the data that would be lost were measured against objectives written "
        "down in advance.",
        (("matrix", "Matrix"), ("objectives", "Objectives"), ("drills", "Drill details")),
    ),
    Control(
        "ISO/IEC 27001:2022",
        "A.8.13",
        "Backup copies of information, software and systems shall be maintained and regularly tested in "
        "accordance with the agreed topic-specific policy on backup.",
        "Which backup copy was tested (id, time, size, location, SHA-256), that it restored, every check "
        "run on the restored data, and how regularly the tests ran.",
        (("drills", "Drill details"), ("trends", "Trends")),
        regular=True,
    ),
    Control(
        "ISO/IEC 27001:2022",
        "A.5.30",
        "ICT readiness shall be planned, implemented, maintained and tested based on business continuity "
        "objectives and ICT continuity requirements.",
        "Measured RTO and RPO against the continuity objectives, with their trend over earlier runs.",
        (("objectives", "Objectives"), ("trends", "Trends")),
    ),
    Control(
        "PCI DSS v4.0",
        "12.10.1 / 12.10.2",
        "The incident response plan includes business recovery and continuity procedures and data backup "
        "processes (12.10.1), and is tested at least once every 12 months, including all of those "
        "elements (12.10.2).",
        "A dated test of the data backup and recovery procedure: what was restored, by whom, where and "
        "with which tools, in tamper-evident records.",
        (("environment", "Environment"), ("integrity", "Integrity"), ("trends", "Trends")),
        regular=True,
    ),
)

SCOPE_NOTE = (
    "This report evidences the testing part of each control. The backup policy, the approval of the "
    "objectives and the follow-up of exceptions are evidenced elsewhere."
)
