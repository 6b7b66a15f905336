"""The officers' forms. Every one carries a CSRF token (CSRFProtect checks every POST)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    MultipleFileField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from .. import identity
from ..accounts import MAX_PASSPHRASE, MIN_PASSPHRASE
from ..reporter.forms import readable_text


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
