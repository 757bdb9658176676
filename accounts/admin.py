"""The Django admin for accounts."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.forms import AdminPasswordChangeForm as AdminSiteOwnPasswordChangeForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control

from accounts.backends import RATE_LIMITED
from accounts.exceptions import RateLimited, TokenRevoked
from accounts.models import AccountToken, AuthEvent, RefreshToken, ServiceClient, Session, SessionEndReason, User
from accounts.scopes import SCOPES
from accounts.selectors import sessions_live
from accounts.services import (
    account_tokens_revoke,
    admin_sign_in_record,
    client_create,
    client_disable,
    client_secret_rotate,
    django_session_password_check_count,
    password_set,
    session_revoke_all,
    sessions_revoke,
    user_deactivate,
    users_delete,
)
from accounts.services.clients import client_name_clean
from accounts.services.locking import users_locked


class AuditedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form; every attempt goes to the audit trail, as a GraphQL sign-in does."""

    def clean(self):
        try:
            cleaned = super().clean()
        except ValidationError:
            admin_sign_in_record(
                request=self.request,
                email=self.cleaned_data.get("username"),
                user=None,
                refusal=getattr(self.request, RATE_LIMITED, None),
            )
            raise
        admin_sign_in_record(request=self.request, email=self.cleaned_data.get("username"), user=self.user_cache)
        return cleaned


admin.site.login_form = AuditedAdminAuthenticationForm


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")


class PasswordSetForm(AdminPasswordChangeForm):
    """The admin's "change password" form, through the service that ends every session."""

    def save(self, commit=True):
        if not commit:
            return super().save(commit=False)
        # AdminPasswordChangeForm's clean() turns the "usable password" choice into this key.
        usable = self.cleaned_data.get("set_usable_password", True)
        try:
            password_set(user=self.user, password=self.cleaned_data["password1"] if usable else None)
        except TokenRevoked:
            raise Http404("The account no longer exists.") from None
        return self.user


class OwnPasswordChangeForm(AdminSiteOwnPasswordChangeForm):
    """The admin's "change my password" page, through the service that ends every session.

    Its check of the old password counts against the admin session's budget, as a
    signed-in GraphQL password check counts against its session's.
    """

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_old_password(self):
        try:
            django_session_password_check_count(session_key=self.request.session.session_key or "")
        except RateLimited as refused:
            raise ValidationError(
                f"Too many attempts. Try again in {refused.retry_after} seconds.", code="rate_limited"
            ) from None
        return super().clean_old_password()

    def save(self, commit=True):
        if not commit:
            return super().save(commit=False)
        try:
            password_set(user=self.user, password=self.cleaned_data["new_password1"])
        except TokenRevoked:
            raise Http404("The account no longer exists.") from None
        return self.user


def own_password_change(request):
    """The admin's "change my password" page (admin.site.password_change) with OwnPasswordChangeForm.

    Django's AdminSite hard-codes its form; config/urls.py routes the page here instead,
    so that every way the admin sets a password goes through the account rules.
    """
    request.current_app = admin.site.name
    return OwnPasswordChangeView.as_view(
        success_url=reverse("admin:password_change_done", current_app=admin.site.name),
        extra_context=admin.site.each_context(request),
    )(request)


class OwnPasswordChangeView(PasswordChangeView):
    form_class = OwnPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes = {"email": forms.EmailField}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ("username", "email", "is_active", "is_staff", "is_email_verified", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "is_email_verified")
    search_fields = ("username", "email")
    ordering = ("-date_joined",)
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("username", "email", "password")}),
        ("Status", {"fields": ("is_active", "is_email_verified")}),
        ("Permissions", {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )
    actions = ["end_all_sessions"]

    change_password_form = PasswordSetForm

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST" and transaction.get_connection().in_atomic_block:
            # An edit or a deletion works on the account's row, locked and current (the one
            # lock order: the accounts first, by id): a password change committed while the
            # form was on its way is never written back over with the hash read before it.
            # The administrator's own row too: the admin's log entry refers to it, and two
            # administrators editing each other must not deadlock.
            users_locked(sorted({obj.pk, request.user.pk}))
            obj = User.objects.filter(pk=obj.pk).first()
        return obj

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # An account's sessions, refresh tokens and emailed links go with it by rule (nobody
        # deletes them one by one in the admin), so deleting it needs no permission on them.
        perms_needed -= {model._meta.verbose_name for model in (Session, RefreshToken, AccountToken)}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        users_delete(user_ids=[obj.pk], request=request, actor=request.user)

    def delete_queryset(self, request, queryset):
        users_delete(user_ids=list(queryset.values_list("pk", flat=True)), request=request, actor=request.user)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            # A deactivated account's sessions end too, so reactivating it revives none.
            user_deactivate(user=obj, request=request)
        if change and "email" in form.changed_data:
            # Links mailed to the old address (a reset, a pending change) must not outlive it.
            account_tokens_revoke(user=obj)

    def has_end_permission(self, request):
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="End all sessions of the selected users", permissions=["end"])
    def end_all_sessions(self, request, queryset):
        count = 0
        for user in queryset:
            try:
                count += session_revoke_all(
                    user=user, reason=SessionEndReason.ADMIN, request=request, actor=request.user
                )
            except TokenRevoked:
                continue  # deleted since the list was shown: its sessions went with it
        self.message_user(request, f"Ended {count} session(s).", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin shows but never adds, edits or deletes (the services and housekeeping do)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", "Live"), ("revoked", "Revoked"), ("expired", "Expired"))

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(pk__in=sessions_live().values("pk"))
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            live_or_revoked = Q(pk__in=sessions_live().values("pk")) | Q(revoked_at__isnull=False)
            return queryset.exclude(live_or_revoked)
        return queryset


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    """Sign-in sessions: read-only, except that an administrator can end them."""

    list_display = ("user", "created_at", "last_used_at", "expires_at", "ip_address", "short_user_agent", "state")
    list_filter = (SessionStateFilter, "revoked_reason", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__email", "user__username", "ip_address")
    ordering = ("-last_used_at",)
    list_select_related = ("user",)
    actions = ["end_sessions"]
    fields = (
        "id",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip_address",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields

    # Ending a session is the action below; deleting one is housekeeping's.
    def has_end_permission(self, request):
        return request.user.has_perm("accounts.change_session")

    @admin.display(description="user agent")
    def short_user_agent(self, session):
        return session.user_agent[:60]

    @admin.display(description="state")
    def state(self, session):
        if session.revoked_at is not None:
            return f"revoked ({session.get_revoked_reason_display()})"
        return "expired" if session.is_expired(timezone.now()) else "live"

    @admin.action(description="End the selected sessions", permissions=["end"])
    def end_sessions(self, request, queryset):
        count = sessions_revoke(queryset, reason=SessionEndReason.ADMIN, request=request, actor=request.user)
        self.message_user(request, f"Ended {count} session(s).", messages.SUCCESS)


@admin.register(AuthEvent)
class AuthEventAdmin(ReadOnlyAdmin):
    """The audit trail: read-only, searchable, pruned by `manage.py housekeeping`."""

    list_display = ("created_at", "kind", "user", "user_ref", "identifier", "ip_address", "detail")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("identifier", "user__email", "user__username", "ip_address", "=user_ref")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    list_select_related = ("user",)
    fields = (
        "created_at",
        "kind",
        "user",
        "user_ref",
        "identifier",
        "ip_address",
        "user_agent",
        "session_id",
        "detail",
    )
    readonly_fields = fields


class ServiceClientCreationForm(forms.ModelForm):
    """A new client's name and scopes; the id and the secret are made by client_create."""

    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="What the client's tokens may do.",
    )

    class Meta:
        model = ServiceClient
        fields = ("name",)

    def clean_name(self):
        return client_name_clean(self.cleaned_data.get("name"))


# The page that shows a secret, once: rendered in the response to the POST that made it,
# so the secret is never stored anywhere (a message would keep it in a cookie or the
# session until the next page).
_SECRET_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{{ changelist_url }}">Service clients</a> &rsaquo; {{ client.name }}</div>{% endblock %}
{% block content %}
<p>{{ intro }}</p>
<table>
<tr><th>client_id</th><td><code id="client-id">{{ client.client_id }}</code></td></tr>
<tr><th>client_secret</th><td><code id="client-secret">{{ secret }}</code></td></tr>
<tr><th>scope</th><td><code id="client-scope">{{ client.scopes }}</code></td></tr>
</table>
<p><strong>Copy the secret now: it is shown only this once, and only its digest is stored.</strong>
If it is lost, rotate it.</p>
<p><a href="{{ changelist_url }}">Back to the service clients</a></p>
{% endblock %}"""
)


@admin.register(ServiceClient)
class ServiceClientAdmin(admin.ModelAdmin):
    """Service clients: created here (the secret is shown once), rotated and disabled by actions.

    Every step goes through accounts.services.clients and its audit entry. A client's
    scopes are fixed at creation (a wider grant is a new client); a client is disabled,
    never deleted, so the audit trail keeps naming it.
    """

    add_form = ServiceClientCreationForm
    list_display = ("name", "client_id", "scopes", "is_active", "created_at", "secret_changed_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "=client_id")
    ordering = ("-created_at",)
    readonly_fields = ("client_id", "scopes", "is_active", "created_at", "secret_changed_at", "last_used_at")
    fields = ("name", *readonly_fields)
    actions = ["rotate_secret", "disable_clients"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ("name", "scopes") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        client, secret = client_create(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], request=request, actor=request.user
        )
        # The admin goes on with `obj` (its log entry): it becomes the row just created.
        for field in ServiceClient._meta.concrete_fields:
            setattr(obj, field.attname, getattr(client, field.attname))
        obj._state.adding, obj._state.db = False, client._state.db
        request._service_client_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, request._service_client_secret, "The service client was created.")

    def _secret_page(self, request, client, secret, intro):
        context = {
            **self.admin_site.each_context(request),
            "title": f"Secret of {client.name}",
            "opts": self.opts,
            "client": client,
            "secret": secret,
            "intro": intro,
            "changelist_url": reverse("admin:accounts_serviceclient_changelist", current_app=self.admin_site.name),
        }
        response = TemplateResponse(request, _SECRET_PAGE, context)
        patch_cache_control(response, no_store=True)
        return response

    @admin.action(
        description="Rotate the secret of the selected client (shows the new one once)", permissions=["change"]
    )
    def rotate_secret(self, request, queryset):
        clients = list(queryset[:2])
        if len(clients) != 1:
            self.message_user(request, "Select exactly one client to rotate its secret.", messages.ERROR)
            return None
        try:
            secret = client_secret_rotate(client=clients[0], request=request, actor=request.user)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        intro = "The secret was rotated: the old one and every token issued with it no longer work."
        return self._secret_page(request, clients[0], secret, intro)

    @admin.action(description="Disable the selected clients (their tokens stop working)", permissions=["change"])
    def disable_clients(self, request, queryset):
        count = sum(client_disable(client=client, request=request, actor=request.user) for client in queryset)
        self.message_user(request, f"Disabled {count} client(s).", messages.SUCCESS)
