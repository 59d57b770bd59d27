"""Dashboard forms. They check shapes (types, ranges, required fields); the
rules that matter (names, uniqueness, quotas) live in the services, whose
refusals the views attach to the form as errors."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password

from billing.choices import UNLIMITED, QuotaResource
from identity.choices import Role
from identity.models import Project


class Form(forms.Form):
    """A form rendered with Bootstrap's classes by dashboard/forms/form.html."""

    template_name = "dashboard/forms/form.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["class"] += " is-invalid"


class KeyPairCreateForm(Form):
    name = forms.CharField(max_length=255, help_text="Letters, digits, spaces, '-', '_' and '.'.")


class KeyPairImportForm(KeyPairCreateForm):
    public_key = forms.CharField(
        label="Public key", widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        help_text="One OpenSSH public key line, for example the contents of ~/.ssh/id_ed25519.pub.")


class FlavorForm(Form):
    id = forms.CharField(label="ID", max_length=255, required=False, help_text="Leave empty for a generated UUID.")
    name = forms.CharField(max_length=255)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    vcpus = forms.IntegerField(label="vCPUs", min_value=1)
    ram = forms.IntegerField(label="RAM (MiB)", min_value=1)
    disk = forms.IntegerField(label="Root disk (GB)", min_value=0, initial=0)
    ephemeral = forms.IntegerField(label="Ephemeral disk (GB)", min_value=0, initial=0)
    swap = forms.IntegerField(label="Swap (MiB)", min_value=0, initial=0)
    rxtx_factor = forms.FloatField(label="RX/TX factor", min_value=0.0001, initial=1.0)
    is_public = forms.BooleanField(label="Public", required=False, initial=True,
                                   help_text="Private flavors are offered only to the projects given access.")


class FlavorAccessForm(Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())

    def __init__(self, *args, flavor, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.exclude(flavor_access__flavor=flavor)


class ProjectForm(Form):
    name = forms.CharField(max_length=64)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class UserCreateForm(Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False)
    password_again = forms.CharField(label="Password (again)", widget=forms.PasswordInput, strip=False)
    is_staff = forms.BooleanField(label="Operator", required=False,
                                  help_text="Operators see the Admin and Identity panels and Django admin.")

    def clean_username(self):
        username = self.cleaned_data["username"]
        # The model's own validator: letters, digits and @.+-_ only.
        get_user_model().username_validator(username)
        return username

    def clean(self):
        data = super().clean()
        password, again = data.get("password"), data.get("password_again")
        if password and again and password != again:
            self.add_error("password_again", "The two passwords differ.")
        elif password:
            try:
                validate_password(password)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class MembershipForm(Form):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True))
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class ProjectMemberForm(Form):
    """Add a user to a project already chosen by the page."""

    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(Form):
    role = forms.ChoiceField(choices=Role.choices)


class QuotaLimitsForm(Form):
    """One limit per resource; -1 is unlimited."""

    def __init__(self, *args, limits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        for resource in QuotaResource:
            self.fields[resource.value] = forms.IntegerField(
                label=resource.label, min_value=UNLIMITED, initial=limits[resource])
            self.fields[resource.value].widget.attrs["class"] = "form-control form-control-sm"

    def changed_limits(self):
        """``{resource: limit}`` for the limits the operator changed."""
        return {QuotaResource(name): value for name, value in self.cleaned_data.items()
                if value != self.limits[QuotaResource(name)]}
