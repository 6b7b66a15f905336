"""The officers' forms. Every one carries a CSRF token (CSRFProtect checks every POST)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ..accounts import MAX_PASSPHRASE, MIN_PASSPHRASE


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
