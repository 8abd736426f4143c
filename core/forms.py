from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction

from .roles import Role, user_set_role


class UserCreateForm(UserCreationForm):
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    @transaction.atomic
    def save(self, commit=True):
        user = super().save(commit=True)
        user_set_role(user=user, role=Role(self.cleaned_data["role"]))
        return user


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
