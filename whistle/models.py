"""The database tables, as typed SQLAlchemy 2 models. Models hold data only: they never
commit and never encrypt (the services do: `intake.py`, `cases.py`, `keyring.py`...).

Every secret (tip fields, file names, file contents, messages) is stored as ciphertext made
by `crypto`. The plaintext columns are workflow metadata, each justified in docs/data.md.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    SmallInteger,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Status(enum.StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    UNDER_REVIEW = "under_review"
    INVESTIGATING = "investigating"
    REFERRED = "referred"
    CLOSED = "closed"


class Outcome(enum.StrEnum):
    SUBSTANTIATED = "substantiated"
    UNSUBSTANTIATED = "unsubstantiated"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    OUTSIDE_JURISDICTION = "outside_jurisdiction"


class Channel(enum.StrEnum):
    WEB = "web"
    PHONE = "phone"
    LETTER = "letter"
    WALK_IN = "walk_in"
    EMAIL = "email"
    GENERAL = "general_channel"  # passed on from the general-complaints channel


class Agency(enum.StrEnum):
    """Where a case may be referred (MISSION.md: outside agencies)."""

    NACC = "nacc"  # National Anti-Corruption Commission
    PACC = "pacc"  # Public Sector Anti-Corruption Commission
    SAO = "state_audit_office"
    OMBUDSMAN = "ombudsman"
    POLICE = "police"
    OTHER = "other"


class EventKind(enum.StrEnum):
    STATUS = "status"  # a workflow step (`status` says which)
    ASSIGNED = "assigned"  # the case was given to an officer
    EXTENDED = "extended"  # the delay was explained to the reporter; `detail` is the new due date
    IDENTITY_OPENED = "identity_opened"  # the reporter's confidential identity was revealed


class Author(enum.StrEnum):
    REPORTER = "reporter"
    OFFICER = "officer"


class KeyRole(enum.StrEnum):
    OFFICER = "officer"
    RECOVERY = "recovery"


class Role(enum.StrEnum):
    """What an account may do (DESIGN §7)."""

    OFFICER = "officer"  # reads and processes tips
    SUPERVISOR = "supervisor"  # metadata, deadlines, reports, the audit trail; never content
    ADMIN = "admin"  # accounts and public keys; never content


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class RecipientKey(Base):
    """A public key that new secrets are sealed to: an officer's or the offline recovery key."""

    __tablename__ = "recipient_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    role: Mapped[KeyRole] = mapped_column(_enum(KeyRole))
    label: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(1216))
    #: The key's signing half (crypto §2.2), and for an officer key the recovery key's
    #: certificate of both (crypto §9): without one that checks under the anchor pinned in
    #: the instance folder, the key receives nothing and signs nothing.
    verify_key: Mapped[bytes | None] = mapped_column(LargeBinary(1984), default=None)
    certificate: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_on: Mapped[dt.date] = mapped_column(Date)
    retired_on: Mapped[dt.date | None] = mapped_column(Date, default=None)


class Report(Base):
    """One case. `content` is the sealed JSON of everything the reporter wrote."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: 16 random bytes naming the case inside every sealed item's context (crypto §4),
    #: with the reporter key, the channel and the received date: none of these may change.
    uid: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel), index=True)
    category: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[Status] = mapped_column(_enum(Status), index=True)
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome), default=None)
    received_on: Mapped[dt.date] = mapped_column(Date, index=True)
    ack_due: Mapped[dt.date] = mapped_column(Date, index=True)
    #: The current resolution deadline: moved by each explanation sent to the reporter.
    resolve_due: Mapped[dt.date] = mapped_column(Date, index=True)
    #: The day the case first left "received" (the acknowledgement deadline's test).
    acknowledged_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    #: True once a resolution deadline passed with the case neither closed nor explained.
    resolve_missed: Mapped[bool] = mapped_column(Boolean, default=False)
    referred_to: Mapped[Agency | None] = mapped_column(_enum(Agency), default=None)
    #: The day of the referral (its status event's day), written with that event; a purge
    #: keeps it. Cases purged before this column existed have their closing day instead.
    referred_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None, index=True)
    #: The day the case was closed; the retention period counts from it (None while open).
    closed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    #: The day retention wiped the case (retention.py): its secret columns are then empty
    #: and it has no messages or files; the row stays so that the statistics count it.
    purged_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    #: The reporter's rating's day and score (1 to 5), copied from `ratings` when it is
    #: written, so that the statistics count every case from this one table (no join).
    rated_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    rating_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    # Tracking-code verification: per-report salt, Argon2id cost, derived verifier.
    code_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    code_time_cost: Mapped[int] = mapped_column(Integer)
    code_memory_cost: Mapped[int] = mapped_column(Integer)
    code_parallelism: Mapped[int] = mapped_column(Integer)
    code_verifier: Mapped[bytes] = mapped_column(LargeBinary(32))
    reporter_public_key: Mapped[bytes] = mapped_column(LargeBinary(1216))
    #: None while the reporter's key comes from the code's derivation; once the case has
    #: moved to a new Argon2 cost, that same key sealed under the new derivation, so that
    #: messages sealed to it stay readable (docs/crypto.md section 12).
    reporter_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary(128), default=None)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    #: The reporter's name and contact, if they chose to give them confidentially: sealed
    #: apart from the tip, opened only after a supervisor approved a stated reason.
    identity: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    #: Which recipient keys every sealed item of the case is wrapped for
    #: (`keyring.recipients_digest`), set when the case is stored and by each re-wrap; a
    #: case whose value differs from the current recipients' is re-wrap work still to do
    #: (access.py). None: not known (cases stored before this column), counted as to do.
    sealed_for: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)

    # Every code check asks which Argon2 costs live cases have (intake.open_case).
    __table_args__ = (Index("ix_reports_code_cost", "code_time_cost", "code_memory_cost", "code_parallelism", "purged_on"),)

    assignee: Mapped[Account | None] = relationship()
    events: Mapped[list[StatusEvent]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="StatusEvent.id"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Message.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Attachment.id"
    )
    notes: Mapped[list[Note]] = relationship(back_populates="report", cascade="all, delete-orphan", order_by="Note.id")
    identity_requests: Mapped[list[IdentityRequest]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="IdentityRequest.id"
    )
    rating: Mapped[Rating | None] = relationship(back_populates="report")


class StatusEvent(Base):
    """A dated event of the case's timeline: a workflow step, an assignment, a new deadline
    explained to the reporter. `detail` holds no content (an agency, an outcome, a date)."""

    __tablename__ = "status_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind), default=EventKind.STATUS)
    status: Mapped[Status] = mapped_column(_enum(Status))
    on: Mapped[dt.date] = mapped_column(Date)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    detail: Mapped[str | None] = mapped_column(String(64), default=None)

    report: Mapped[Report] = relationship(back_populates="events")
    actor: Mapped[Account | None] = relationship()


class Message(Base):
    """One message of the case's conversation, sealed to the officers, the recovery key and
    the reporter's own key. An officer's message that explains a delay has `explains`.
    `seq` is its fixed place in the thread (1, 2, ...), part of its sealed context."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("report_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    author: Mapped[Author] = mapped_column(_enum(Author))
    #: The officer who wrote it (None for the reporter's); the reporter never sees it.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    explains: Mapped[bool] = mapped_column(Boolean, default=False)
    created_on: Mapped[dt.date] = mapped_column(Date)
    body: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")
    author_account: Mapped[Account | None] = relationship()


class Attachment(Base):
    """A file: its sealed bytes live in the blob store under `blob_name`; its name and type
    are sealed in `meta`; `wraps` holds its data key sealed to each recipient."""

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("blob_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), default=None)
    blob_name: Mapped[str] = mapped_column(String(64))
    wraps: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_size: Mapped[int] = mapped_column(Integer)

    report: Mapped[Report] = relationship(back_populates="attachments")
    message: Mapped[Message | None] = relationship(back_populates="attachments")


class Note(Base):
    """An officer's internal note on a case, sealed to the officers and the recovery key only."""

    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("report_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    created_on: Mapped[dt.date] = mapped_column(Date)
    body: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="notes")
    author: Mapped[Account | None] = relationship()


class IdentityRequest(Base):
    """An officer's request to open a reporter's confidential identity, and the decision.

    The reason is the officer's own words, shown to the supervisor who decides; it must not
    quote the tip (the form says so), since supervisors never read content.
    """

    __tablename__ = "identity_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    requested_on: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    decided_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    approved: Mapped[bool | None] = mapped_column(Boolean, default=None)
    revealed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)

    report: Mapped[Report] = relationship(back_populates="identity_requests")
    requester: Mapped[Account] = relationship(foreign_keys=[requested_by])
    decider: Mapped[Account | None] = relationship(foreign_keys=[decided_by])


class Account(Base):
    """A person who signs in to the officers' app.

    `password_hash` is an Argon2id PHC string. An officer's private key is kept here as the
    same passphrase-sealed document a key file holds (`private_key`): the passphrase that
    signs them in also unlocks it, for that session only. `totp_secret` is sealed under a
    key derived from the server's secret key, so the database alone cannot make codes.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Set when an admin (or the CLI) chose the passphrase: it must be changed at sign-in.
    must_change_passphrase: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary(128), default=None)
    totp_enrolled_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    #: The last TOTP time step accepted, so that one code is never accepted twice.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    #: JSON list of keyed hashes of unused recovery codes.
    recovery_codes: Mapped[str] = mapped_column(Text, default="[]")
    key_id: Mapped[bytes | None] = mapped_column(LargeBinary(16), default=None)
    private_key: Mapped[str | None] = mapped_column(Text, default=None)
    created_on: Mapped[dt.date] = mapped_column(Date)
    disabled_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    #: Where `whistle notify` tells the officer that something is new or due (notify.py).
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    #: The last case and the last reporter's message a notice already covered.
    notified_report_id: Mapped[int] = mapped_column(Integer, default=0)
    notified_message_id: Mapped[int] = mapped_column(Integer, default=0)


class DeadlineNotice(Base):
    """A near deadline an officer was already told about: one notice per case and date."""

    __tablename__ = "deadline_notices"
    __table_args__ = (UniqueConstraint("account_id", "report_id", "due_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    due_on: Mapped[dt.date] = mapped_column(Date)


class AuditEntry(Base):
    """One link of the hash-chained audit trail (audit.py). Never updated or deleted."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    """The chain's head, one row: appending locks it, so two appends cannot fork the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


# --------------------------------------------------------------------------- transparency


class Rating(Base):
    """The reporter's rating of how their closed case was handled: one per case.

    `score` (1 to 5) is counted by the statistics and stays after a purge; `comment`, the
    reporter's optional words, is sealed to the officers and the recovery key (slot
    "rating") and is emptied by a purge like every other secret.
    """

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int] = mapped_column(SmallInteger)
    rated_on: Mapped[dt.date] = mapped_column(Date)
    comment: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)

    report: Mapped[Report] = relationship(back_populates="rating")


class Publication(Base):
    """The public figures of one fiscal year as of one cut (a month's end), frozen when
    first published (statistics.py): every later download of that cut is the same, and
    later cuts are suppressed consistently with it. `figures` is the JSON of
    docs/statistics.md, already suppressed: no raw small count is stored here."""

    __tablename__ = "publications"
    __table_args__ = (UniqueConstraint("fiscal_year", "cut_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer)  # the Buddhist Era year it ends in
    cut_on: Mapped[dt.date] = mapped_column(Date)
    made_on: Mapped[dt.date] = mapped_column(Date)
    figures: Mapped[str] = mapped_column(Text)


class SummaryReport(Base):
    """An executive summary of a half or a whole fiscal year: the officers' written
    analysis (not tip content: their own words about the handling), and its sign-off by a
    supervisor, after which it is public."""

    __tablename__ = "summary_reports"
    __table_args__ = (UniqueConstraint("fiscal_year", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(8))  # "h1" (October to March) or "year"
    problems: Mapped[str] = mapped_column(Text, default="")
    obstacles: Mapped[str] = mapped_column(Text, default="")
    solutions: Mapped[str] = mapped_column(Text, default="")
    written_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    written_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    signed_off_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    signed_off_on: Mapped[dt.date | None] = mapped_column(Date, default=None)

    signer: Mapped[Account | None] = relationship(foreign_keys=[signed_off_by])


class PreventionTag(Base):
    """What a case teaches for prevention: the unit it concerns and the kind of weakness
    it shows, from the organisation's lists. Officers' and supervisors' pages only."""

    __tablename__ = "prevention_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), unique=True)
    unit: Mapped[str] = mapped_column(String(64))
    weakness: Mapped[str] = mapped_column(String(64))
    tagged_on: Mapped[dt.date] = mapped_column(Date)
