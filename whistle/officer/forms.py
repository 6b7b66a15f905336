"""The officers' forms. Every one carries a CSRF token (CSRFProtect checks every POST)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FileField,
    HiddenField,
    MultipleFileField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError

from .. import identity
from ..accounts import MAX_PASSPHRASE, MIN_PASSPHRASE
from ..reporter.forms import ReportForm, readable_text


class SignInForm(FlaskForm):
    username = StringField(_l("User name"), validators=[DataRequired(_l("Please fill in this field.")), Length(max=64)])
    passphrase = PasswordField(_l("Passphrase"), validators=[DataRequired(_l("Please fill in this field.")), Length(max=MAX_PASSPHRASE)])
    code = StringField(_l("Code from your authenticator app, or a recovery code"), validators=[Length(max=32)])


class PassphraseForm(FlaskForm):
    current = PasswordField(_l("Current passphrase"), validators=[DataRequired(_l("Please fill in this field.")), Length(max=MAX_PASSPHRASE)])
    new = PasswordField(
        _l("New passphrase"),
        validators=[
            DataRequired(_l("Please fill in this field.")),
            Length(min=MIN_PASSPHRASE, max=MAX_PASSPHRASE, message=_l("Use at least %(n)d characters.", n=MIN_PASSPHRASE)),
        ],
    )
    repeat = PasswordField(
        _l("New passphrase again"),
        validators=[DataRequired(_l("Please fill in this field.")), EqualTo("new", _l("The two new passphrases differ."))],
    )


class EnrolForm(FlaskForm):
    code = StringField(_l("The 6-digit code your app shows now"), validators=[DataRequired(_l("Please fill in this field.")), Length(max=12)])


class SignOutForm(FlaskForm):
    pass


class StepForm(FlaskForm):
    """One workflow step. The page offers each allowed step as its own button."""

    status = HiddenField(validators=[DataRequired()])
    agency = SelectField(_l("Refer to"), validate_choice=False)
    outcome = SelectField(_l("Outcome"), validate_choice=False)


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Officer in charge"), validate_choice=False)


class NoteForm(FlaskForm):
    text = TextAreaField(
        _l("Internal note (only officers can read it)"),
        validators=[DataRequired(_l("Please fill in this field.")), Length(max=10_000)],
    )


class MessageForm(FlaskForm):
    text = TextAreaField(
        _l("Message to the reporter"),
        validators=[DataRequired(_l("Please fill in this field.")), Length(max=10_000)],
    )
    files = MultipleFileField(_l("Files (optional)"))
    explains = BooleanField(_l("This message explains why the case needs more time"))
    new_due = DateField(_l("Next deadline for resolving the case"), validators=[Optional()])


class RecordForm(ReportForm):
    """A tip received by telephone, letter, in person, e-mail or from the general channel:
    the reporter's own form, with the channel, the day it arrived, and the reporter's
    consent before any name or contact is typed."""

    channel = SelectField(_l("How the tip reached us"), validate_choice=False)
    received_on = DateField(
        _l("The day it was received"),
        validators=[DataRequired(_l("Please give the day the tip was received."))],
        invalid_value_message=_l("Please give a real date."),
    )
    identity_consent = BooleanField(_l("The reporter agreed to give their name and contact in confidence"))
    #: Random per form shown: a second POST of the same form (a reload of the receipt, a
    #: double click) would record the tip twice and count it twice.
    once = HiddenField(validators=[DataRequired(), Length(min=16, max=64)])

    def __init__(self, categories: list[tuple[str, str]], channels: list[tuple[str, str]], today, *args, **kwargs) -> None:
        super().__init__(categories, *args, **kwargs)
        self.channel.choices = [("", _l("Choose one"))] + channels
        self._channels = {key for key, _label in channels}
        self._today = today

    def validate_channel(self, field: SelectField) -> None:
        if field.data not in self._channels:
            raise ValidationError(_l("Please choose how the tip reached us."))

    def validate_received_on(self, field: DateField) -> None:
        if field.data is not None and field.data > self._today:
            raise ValidationError(_l("The day received cannot be later than today."))

    def validate_identity_consent(self, field: BooleanField) -> None:
        if any(self.identity().values()) and not field.data:
            raise ValidationError(_l("Record a name or contact only if the reporter agreed: tick this box, or leave both empty."))


class IdentityRequestForm(FlaskForm):
    reason = TextAreaField(
        _l("Why the case needs the reporter's name and contact"),
        validators=[
            DataRequired(_l("Please fill in this field.")),
            Length(
                min=identity.MIN_REASON, max=identity.MAX_REASON,
                message=_l("Please give the reason in %(min)d to %(max)d characters.", min=identity.MIN_REASON, max=identity.MAX_REASON),
            ),
            readable_text,
        ],
    )


class DecisionForm(FlaskForm):
    """A supervisor's decision: the page offers approve and refuse as two buttons."""

    decision = HiddenField(validators=[DataRequired()])


class OpenIdentityForm(FlaskForm):
    pass


# --------------------------------------------------------------------------- administration


class NewAccountForm(FlaskForm):
    username = StringField(
        _l("User name"),
        validators=[
            DataRequired(_l("Please fill in this field.")), Length(max=64),
            Regexp(r"^[A-Za-z0-9._-]+$", message=_l("Use letters, digits, '.', '_' or '-' only.")),
        ],
    )
    display_name = StringField(_l("Name as colleagues see it"), validators=[Length(max=200)])
    role = SelectField(_l("Role"), validate_choice=True)
    email = StringField(_l("E-mail address for notices (optional)"), validators=[Optional(), Length(max=254)])


class EmailForm(FlaskForm):
    email = StringField(_l("E-mail address for notices"), validators=[Optional(), Length(max=254)])


class DisableForm(FlaskForm):
    revoke = BooleanField(_l("Their key may be in someone else's hands (a lost or stolen computer, a disclosed passphrase): revoke it as well"))


class ConfirmForm(FlaskForm):
    """A button that changes one thing; the page says what."""


# --------------------------------------------------------------------------- access to cases


class CertifyForm(FlaskForm):
    recovery_key = FileField(_l("The recovery key file (recovery.key)"))
    passphrase = PasswordField(
        _l("The recovery key's passphrase"), validators=[DataRequired(_l("Please fill in this field.")), Length(max=MAX_PASSPHRASE)]
    )
    rewrap = BooleanField(_l("Also give this key every stored case now, with the recovery key"))

