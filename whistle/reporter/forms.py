"""The reporter's forms: what is accepted, with caps checked before any other work."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, MultipleFileField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from ..codes import MalformedCode, WrongLength, parse_code


def readable_text(_form: FlaskForm, field: StringField) -> None:
    """Refuse text a browser never sends: NUL bytes and bytes that were not UTF-8.

    Werkzeug replaces undecodable bytes with U+FFFD; no keyboard types it, so its presence
    means the bytes were not UTF-8.
    """
    value = field.data or ""
    if "\x00" in value or "\ufffd" in value:
        field.data = value.replace("\x00", "").replace("\ufffd", "")
        raise ValidationError(_l("This text contains characters that could not be read. Please check it and send it again."))


def _text(label: str, max_chars: int, required: bool = False, area: bool = True):
    validators = [DataRequired(_l("Please fill in this field."))] if required else []
    validators += [
        Length(max=max_chars, message=_l("Please shorten this text to at most %(max)d characters.", max=max_chars)),
        readable_text,
    ]
    kind = TextAreaField if area else StringField
    return kind(label, validators=validators)


class ReportForm(FlaskForm):
    category = SelectField(_l("What kind of wrongdoing is it?"), validate_choice=False)
    what = _text(_l("What happened?"), 20_000, required=True)
    people = _text(_l("Who is involved? Give their names, positions and units if you know them."), 5_000)
    when = _text(_l("When did it happen?"), 500, area=False)
    where = _text(_l("Where did it happen?"), 1_000, area=False)
    how_known = _text(_l("How do you know about it?"), 3_000)
    evidence = _text(_l("What evidence exists, and who holds it?"), 3_000)
    files = MultipleFileField(_l("Files (optional)"))
    # Optional, and sealed apart from the report: opened only for a reason a supervisor approved.
    identity_name = _text(_l("Your name"), 200, area=False)
    identity_contact = _text(_l("How to reach you: a telephone number, an e-mail or a postal address"), 500, area=False)

    def __init__(self, categories: list[tuple[str, str]], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.category.choices = [("", _l("Choose one"))] + categories
        self._category_keys = {key for key, _label in categories}

    def validate_category(self, field: SelectField) -> None:
        if field.data not in self._category_keys:
            raise ValidationError(_l("Please choose the kind of wrongdoing."))

    def fields_text(self) -> dict[str, str]:
        return {name: (getattr(self, name).data or "").strip() for name in ("what", "people", "when", "where", "how_known", "evidence")}

    def identity(self) -> dict[str, str]:
        """The name and contact, as typed (both empty: the reporter stays anonymous)."""
        return {"name": (self.identity_name.data or "").strip(), "contact": (self.identity_contact.data or "").strip()}


def _code_check(_form: FlaskForm, field: StringField) -> None:
    try:
        field.parsed = parse_code(field.data or "")
    except WrongLength:
        raise ValidationError(
            _l("A tracking code has 32 digits in eight groups of four (older codes have 28 digits in seven "
               "groups). Check that you typed every group.")
        ) from None
    except MalformedCode:
        raise ValidationError(
            _l("This is not a valid tracking code. Check each group of four digits and try again.")
        ) from None


class StatusForm(FlaskForm):
    code = StringField(
        _l("Your tracking code"),
        validators=[DataRequired(_l("Please type your tracking code.")), _code_check],
    )


class ReceiptForm(FlaskForm):
    """The receipt's forms carry the code shown, checked against the visit's MAC."""

    code = HiddenField(validators=[DataRequired(), Length(max=120)])


class SavedForm(ReceiptForm):
    """The 'check that you saved it' step: the last group typed back."""

    last_group = StringField(_l("Type the last four digits of your code"), validators=[Length(max=20)])


class ReplyForm(FlaskForm):
    text = _text(_l("Your reply"), 10_000, required=True)
    files = MultipleFileField(_l("Files (optional)"))


class AddForm(FlaskForm):
    """Information or files the reporter adds to their report later: either will do. Its
    fields carry a prefix: the reply form on the same page has fields of the same names."""

    text = _text(_l("What would you like to add?"), 10_000)
    files = MultipleFileField(_l("Files (optional)"))

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", "add")
        super().__init__(*args, **kwargs)


class CloseForm(FlaskForm):
    pass


class RatingForm(FlaskForm):
    """How satisfied the reporter is with the handling of their closed case."""

    score = RadioField(
        _l("How satisfied are you with how your report was handled?"),
        choices=[
            ("5", _l("5: very satisfied")),
            ("4", _l("4: satisfied")),
            ("3", _l("3: neither satisfied nor dissatisfied")),
            ("2", _l("2: dissatisfied")),
            ("1", _l("1: very dissatisfied")),
        ],
        validators=[DataRequired(_l("Please choose one answer."))],
    )
    comment = _text(_l("Anything you would like to tell the officers about the handling (optional; only they can read it)"), 2_000)
