"""One typed place for every setting; each is an environment variable prefixed RPRP_.

Values marked *policy* are force policy, not law: the regulations set no number for them.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RPRP_", extra="ignore")

    data_dir: Path = Field(default=Path(".rprp"), description="Where SQLite files, keys and logs live")
    database_url: str = Field(default="", description="Case DB URL; default SQLite in data_dir")
    secret_key: str = Field(
        default="", description="Signs officers' account links; default: a key file in data_dir"
    )

    portal_host: str = "127.0.0.1"
    portal_port: int = 8000
    portal_url: str = Field(default="", description="Public base URL of the portal, used in emails")
    prefect_ui_url: str = Field(
        default="", description="Base URL of the Prefect UI people use (emails, case pages); "
        "default: the portal's gateway, <portal URL>/prefect")
    portal_users: str = Field(
        default="",
        description="Bootstrap sign-ins as user:password:role[+role], comma-separated: created in "
                    "the users table at start if missing (development; use `rprp users`)",
    )
    session_hours: int = Field(default=8, description="*policy* a portal session lasts this long")
    api_credential_seconds: int = Field(
        default=60, ge=0,
        description="An API client's HTTP Basic credentials, once checked, are taken without the "
                    "password hash again for this long (0: check every request); a disabled "
                    "user or a changed password ends it at once")
    cookie_secure: str = Field(
        default="auto",
        description="Session cookie Secure flag: auto (when served over HTTPS), true or false",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For/-Proto (the client address and HTTPS)",
    )
    signin_max_failures_per_account: int = Field(
        default=5, description="*policy* wrong passwords for one account before it is throttled")
    signin_max_failures_per_address: int = Field(
        default=20, description="*policy* failed sign-ins from one address before it is throttled")
    signin_lockout_minutes: int = Field(
        default=15, description="*policy* failures count for this long; throttled until then")

    oidc_issuer: str = Field(default="", description="OpenID Connect issuer URL: turns on SSO")
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = Field(default="groups", description="Claim listing the groups")
    oidc_group_roles: str = Field(
        default="", description="Group to role, comma-separated: psd-group=psd,reviewers=reviewer")
    oidc_label: str = Field(default="your organisation's account",
                            description="Words on the sign-in button")

    account_code_minutes: int = Field(
        default=30, description="*policy* how long the officer's one-time code works")
    account_code_max_attempts: int = Field(
        default=5, description="*policy* wrong codes before a new one must be sent")

    psd_email: str = "psd@force.example"
    psd_decision_makers: str = Field(
        default="psd@force.example",
        description="Emails or names allowed to take appropriate-authority decisions, comma-separated",
    )

    psd_contact_email: str = Field(
        default="", description="PSD's contact address in letters; default: psd_email")
    psd_contact_phone: str = Field(default="", description="PSD's telephone number in letters")

    smtp_host: str = ""
    smtp_port: int = 1025
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = "rprp@force.example"
    smtp_timeout_seconds: float = 10.0
    smtp_max_attempts: int = Field(
        default=8, description="Attempts at an email the server refuses before it is marked failed "
                               "(an unreachable server only delays mail)")
    smtp_retry_seconds: float = Field(
        default=30.0, description="The first wait before an email is tried again; it doubles "
                                  "with each attempt, up to an hour")

    account_working_days: int = Field(default=5, description="Law: 5 working days for the account")
    account_reminder_working_days: str = Field(
        default="2,0", description="*policy* reminders, working days before the account deadline"
    )
    discussion_target_working_days: int = Field(default=15, description="*policy*")
    report_target_working_days: int = Field(default=10, description="*policy*")
    decision_target_working_days: int = Field(default=5, description="*policy* paused decisions")
    report_quality_check: Literal["always", "first_n", "never"] = Field(
        default="first_n", description="*policy* PSD checks a report before it is filed: every "
        "report, a reviewer's first N reports only, or none")
    report_quality_check_first_n: int = Field(
        default=3, description="*policy* with first_n: how many of a reviewer's reports PSD checks")
    report_check_target_working_days: int = Field(
        default=3, description="*policy* PSD's target for the quality check of a report")
    learning_themes_extra: str = Field(
        default="", description="*policy* the force's own learning-register themes, comma-"
        "separated, added to the default list (tasks/learning_register.py DEFAULT_THEMES)")
    learning_board_members: str = Field(
        default="", description="the monthly learning board's members: email addresses, comma-"
        "separated, sent the board's pack on the first working day of each month; empty: no "
        "email (the pack is still built and shown at /learning/board)")
    complainant_update_days: int = Field(default=28, description="Law: at least every 4 weeks")
    outcome_letter_working_days: int = Field(default=5, description="Law: outcome within 5 WD")
    review_application_days: int = Field(
        default=28, description="Law: a review is applied for within 28 days (C&M reg 29(2))")
    review_rights_endings: str = Field(
        default="closed_complete,closed_nfa",
        description="*policy* endings whose complainant letter carries the review information",
    )
    local_policing_body_name: str = Field(
        default="the local policing body (your Police and Crime Commissioner)",
        description="How letters name the local policing body that hears reviews",
    )
    iopc_name: str = Field(
        default="the Independent Office for Police Conduct (IOPC)",
        description="How letters name the IOPC when it hears the review",
    )
    pdr_reminder_working_days: int = Field(
        default=20, description="*policy* remind the line manager this many working days "
                                "before the reg 70(6) PDR deadline")
    account_link_grace_days: int = Field(
        default=30, description="*policy* how long after the deadline a late account link works"
    )
    stalled_run_minutes: float = Field(
        default=15.0, description="A case run Running this long has lost its process: reschedule "
                                  "(fractions allowed, e.g. 0.5)"
    )
    extra_holidays: str = Field(default="", description="Extra non-working days, ISO dates")
    disproportionality_min_count: int = Field(
        default=5, description="*policy* counts below this are suppressed in monitoring figures"
    )

    # Multi-agency reflective practice meetings (seed 003): the partnership is configuration.
    rpm_partnership_name: str = Field(
        default="the Local Safeguarding Children Partnership",
        description="The safeguarding partnership that runs reflective practice meetings")
    rpm_letterhead: str = Field(
        default="Local Safeguarding Children Partnership",
        description="The letterhead line at the top of every meeting email")
    rpm_business_unit_email: str = Field(
        default="business-unit@partnership.example",
        description="The partnership business unit: receives the record and the CRC summary")
    rpm_business_unit_address: str = Field(
        default="", description="The business unit's postal address, shown in meeting emails")
    rpm_crc_chair: str = Field(
        default="Chair of the Case Review Committee",
        description="How the Case Review Committee's chair is addressed (the CRC's Resume form)")
    rpm_crc_chair_email: str = Field(
        default="crc-chair@partnership.example", description="The CRC chair's address")
    rpm_invitation_reply_days: int = Field(
        default=10, description="*policy* days for an invitee to confirm or decline")
    rpm_record_completion_days: int = Field(
        default=20, description="*policy* days after the meeting to complete the learning log")
    rpm_crc_consideration_days: int = Field(
        default=40, description="*policy* days for the CRC to consider the learning points")
    rpm_link_days: int = Field(
        default=180, description="*policy* how long an invitee's meeting link works")

    @field_validator("session_hours", "signin_max_failures_per_account",
                     "signin_max_failures_per_address", "signin_lockout_minutes",
                     "account_code_minutes", "account_code_max_attempts", "smtp_max_attempts",
                     "disproportionality_min_count",
                     "rpm_invitation_reply_days", "rpm_record_completion_days",
                     "rpm_crc_consideration_days", "rpm_link_days")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("account_working_days", "discussion_target_working_days",
                     "report_target_working_days", "decision_target_working_days",
                     "pdr_reminder_working_days", "report_check_target_working_days",
                     "report_quality_check_first_n")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1 working day")
        return value

    @field_validator("smtp_retry_seconds", "stalled_run_minutes")
    @classmethod
    def _more_than_zero(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("review_rights_endings")
    @classmethod
    def _endings(cls, value: str) -> str:
        from models.enums import TERMINAL_STATES

        known = {state.value for state in TERMINAL_STATES}
        unknown = {x.strip() for x in value.split(",") if x.strip()} - known
        if unknown:
            raise ValueError(f"unknown endings {sorted(unknown)}; use {sorted(known)}")
        return value

    @property
    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        if not path.exists():
            path.mkdir(parents=True, mode=0o700)
        return path

    @property
    def case_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'cases.db'}"

    @property
    def public_portal_url(self) -> str:
        return (self.portal_url or f"http://{self.portal_host}:{self.portal_port}").rstrip("/")

    @property
    def public_prefect_ui_url(self) -> str:
        return (self.prefect_ui_url or f"{self.public_portal_url}/prefect").rstrip("/")

    @property
    def signing_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        key_file = self.resolved_data_dir / "secret.key"
        if not key_file.exists():
            # Created 0600 from the start: the key opens officers' account links.
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
        return key_file.read_text().strip()

    @property
    def generated_secret(self) -> bool:
        """True when links and sessions are signed with a key the product made itself."""
        return not self.secret_key

    @property
    def reminder_offsets(self) -> list[int]:
        return sorted({int(x) for x in self.account_reminder_working_days.split(",") if x.strip()},
                      reverse=True)

    @property
    def psd_contact(self) -> str:
        """Where people reach PSD: the contact address, or PSD's mailbox."""
        return self.psd_contact_email or self.psd_email

    @property
    def endings_with_review_rights(self) -> set[str]:
        return {x.strip() for x in self.review_rights_endings.split(",") if x.strip()}

    @property
    def group_roles(self) -> dict[str, set[str]]:
        """RPRP_OIDC_GROUP_ROLES as group -> roles (a group may appear more than once)."""
        mapping: dict[str, set[str]] = {}
        for entry in self.oidc_group_roles.split(","):
            group, _, role = entry.strip().rpartition("=")
            if group.strip() and role.strip():
                mapping.setdefault(group.strip(), set()).add(role.strip().lower())
        return mapping

    @property
    def decision_makers(self) -> set[str]:
        return {x.strip().lower() for x in self.psd_decision_makers.split(",") if x.strip()}


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings, so tests and `rprp up` can change the environment."""
    get_settings.cache_clear()
