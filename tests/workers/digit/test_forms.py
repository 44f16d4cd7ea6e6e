"""Form validation of DIGIT entities: required, data types, lengths, values, patterns, allowed values."""
from workers.digit.forms import FormValidator, form_problems, normalise_form, summarise
from tests.web.digit.support import household, household_form


def _codes(form, entity):
    return [(e.path, e.code) for e in FormValidator(form).errors(entity)]


def test_a_valid_entity_has_no_errors():
    assert _codes(household_form(), household(1)) == []


def test_each_rule_reports_its_field_and_reason():
    form = household_form()
    assert _codes(form, household(1, firstName=None)) == [("firstName", "REQUIRED")]
    assert _codes(form, household(1, firstName="x" * 21)) == [("firstName", "TOO_LONG")]
    assert _codes(form, household(1, firstName=42)) == [("firstName", "INVALID_TYPE")]
    assert _codes(form, household(1, memberCount=0)) == [("memberCount", "TOO_SMALL")]
    assert _codes(form, household(1, memberCount=31)) == [("memberCount", "TOO_LARGE")]
    assert _codes(form, household(1, memberCount=2.5)) == [("memberCount", "INVALID_TYPE")]
    assert _codes(form, household(1, memberCount=True)) == [("memberCount", "INVALID_TYPE")]
    assert _codes(form, household(1, mobileNumber="12345")) == [("mobileNumber", "PATTERN_MISMATCH")]
    assert _codes(form, household(1, gender="UNKNOWN")) == [("gender", "NOT_ALLOWED")]
    assert _codes(form, household(1, address={"locality": {}})) == [("address.locality.code", "REQUIRED")]


def test_optional_missing_fields_pass_and_several_errors_are_summarised():
    entity = household(1)
    del entity["mobileNumber"]
    assert _codes(household_form(), entity) == []
    errors = FormValidator(household_form()).errors(household(1, firstName="y" * 40, gender="?"))
    assert summarise(errors) == "firstName: longer than 20 characters; gender: must be one of MALE, FEMALE, OTHER"


def test_min_and_max_lengths_and_text_attributes():
    form = {"schema": "s", "version": 1, "elements": [
        {"key": "code", "dataType": "text", "validations": [
            {"name": "minLength", "attribute": "3"}, {"name": "maxLength", "attribute": 5},
            {"name": "allowedValues", "attribute": "abc, abcd, zzzzzz"}]},
        {"key": "when", "dataType": "date", "validations": []},
        {"key": "weird", "dataType": "no-such-type", "validations": [{"name": "no-such-rule", "attribute": 1}]}]}
    validator = FormValidator(form)
    assert [e.code for e in validator.errors({"code": "ab"})] == ["TOO_SHORT", "NOT_ALLOWED"]
    assert [e.code for e in validator.errors({"code": "zzzzzz"})] == ["TOO_LONG"]
    assert validator.errors({"code": "abc", "when": "2024-02-29", "weird": object()}) == []
    assert [e.code for e in validator.errors({"code": "abc", "when": "yesterday"})] == ["INVALID_TYPE"]


def test_publishing_checks_and_normalises_forms():
    assert form_problems(household_form()) == []
    assert "version is required" in form_problems({**household_form(), "version": "two"})[0]
    form = normalise_form({**household_form(), "version": "4"})
    assert form["version"] == 4
    assert form["elements"][1]["validations"][1]["attribute"] == 30
